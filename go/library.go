package writelane

// ABIVersion is the library's WL_ABI_VERSION; it equals HeaderABIVersion when the
// package and the library (the embedded module, or the linked static library with the
// writelane_cgo tag) come from the same sources.
func ABIVersion() uint32 { return libABIVersion() }

// HeaderABIVersion is the WL_ABI_VERSION whose struct layouts this package encodes.
const HeaderABIVersion = uint32(wlABIVersion)

// Version is the library's version text.
func Version() string { return libVersion() }

// Backend names the backend this package was built with: "wasm" (the default: the
// library compiled to WebAssembly, embedded and run by wazero, pure Go) or "cgo" (the
// writelane_cgo build tag: the static C library linked with cgo).
func Backend() string { return backend }
