//! Gives the shared library a soname (`libwritelane.so.0`) on Linux, so programs linked
//! against an installed copy keep working across compatible upgrades.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libwritelane.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
