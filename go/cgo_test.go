//go:build writelane_cgo && cgo

package writelane

import "testing"

// The Go spellings of the ABI's values (abi.go, the public constants) are the header's.
func TestConstantsMatchHeader(t *testing.T) {
	for name, v := range headerValues() {
		if v[0] != v[1] {
			t.Errorf("%s: the header says %d, the Go package %d", name, v[0], v[1])
		}
	}
	for _, n := range headerNames() {
		if n[0] != n[1] {
			t.Errorf("name table: got %q, want %q", n[0], n[1])
		}
	}
}

func TestBackendIsCgo(t *testing.T) {
	if Backend() != "cgo" {
		t.Fatalf("Backend() = %q with the writelane_cgo tag", Backend())
	}
}
