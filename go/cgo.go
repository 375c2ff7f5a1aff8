package writelane

/*
#cgo CFLAGS: -I${SRCDIR}
#cgo LDFLAGS: ${SRCDIR}/../../target/release/libwritelane.a -lgcc_s -lutil -lrt -lpthread -lm -ldl
#include <stdlib.h>
#include "writelane.h"
*/
import "C"

import (
	"unsafe"
)

// emptyByte backs empty strings, which must still be passed as a non-NULL pointer.
var emptyByte byte

// cstr returns a pointer and length for s without copying. The pointer is valid while s
// is alive; C does not keep it past the call.
func cstr(s string) (*C.char, C.size_t) {
	if len(s) == 0 {
		return (*C.char)(unsafe.Pointer(&emptyByte)), 0
	}
	return (*C.char)(unsafe.Pointer(unsafe.StringData(s))), C.size_t(len(s))
}

// gostr copies a borrowed wl_str; nil when absent.
func gostr(s C.wl_str) *string {
	if s.ptr == nil {
		return nil
	}
	v := C.GoStringN(s.ptr, C.int(s.len))
	return &v
}

func errorOf(e *C.wl_error) (status Status, usage string, path string, message string) {
	return Status(e.status), C.GoString(C.wl_usage_name(C.uint32_t(e.usage))), C.GoString(&e.path[0]), C.GoString(&e.message[0])
}

// ABIVersion is the loaded library's WL_ABI_VERSION; it equals HeaderABIVersion when the
// package and the library come from the same sources.
func ABIVersion() uint32 { return uint32(C.wl_abi_version()) }

// HeaderABIVersion is the WL_ABI_VERSION of the header this package was compiled with.
const HeaderABIVersion = uint32(C.WL_ABI_VERSION)

// Version is the loaded library's version text.
func Version() string { return C.GoString(C.wl_version()) }

// bareCall is the cheapest call into the library, for measuring cgo overhead.
func bareCall() uint32 { return uint32(C.wl_abi_version()) }
