//! Links the shim as a non-PIE executable.
//!
//! One shim runs per container, so its private memory is multiplied by the number of
//! containers. In a position-independent executable every pointer in `.data.rel.ro`
//! (vtables, panic locations, format string tables) and the GOT is relocated at load
//! time, which dirties those pages privately in every process (24 KiB per shim here);
//! linked at a fixed address they are resolved by the linker and stay clean pages of the
//! file, shared by all shims. The cost is that the shim's own code is not randomised
//! (its libraries, heap and stack still are).
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
