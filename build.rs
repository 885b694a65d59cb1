//! Link fixes every binary over tch needs (see docs/architecture.md, "Building"):
//! 1. an rpath to libtorch's folder, so the binary runs without LD_LIBRARY_PATH;
//! 2. `--no-as-needed -ltorch`, because `--as-needed` would drop libtorch_cuda.so and CUDA would
//!    never be available even on a GPU machine.
fn main() {
    // torch-sys publishes the folder it linked against to crates that depend on it directly.
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath={lib}");
    }
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=build.rs");
}
