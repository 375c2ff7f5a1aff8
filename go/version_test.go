package writelane

import "testing"

// The library this package links is the release the package says it belongs to, and its
// C ABI is the one of the header the package was compiled with.
func TestPackageVersionMatchesLibrary(t *testing.T) {
	if got := Version(); got != PackageVersion {
		t.Fatalf("libwritelane reports version %q, the Go package says %q", got, PackageVersion)
	}
	if ABIVersion() != HeaderABIVersion {
		t.Fatalf("libwritelane has ABI %d, the layouts this package encodes %d", ABIVersion(), HeaderABIVersion)
	}
}
