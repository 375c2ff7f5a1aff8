//go:build !(writelane_cgo && cgo)

package writelane

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestBackendIsWasm(t *testing.T) {
	if Backend() != "wasm" {
		t.Fatalf("Backend() = %q without the writelane_cgo tag", Backend())
	}
}

// The struct layout the package writes into the module's memory is the one the module
// reports (wl_wasm_layout, from offset_of! in bindings-c/src/wasm.rs), and a changed
// expectation is caught.
func TestWasmLayoutMatchesModule(t *testing.T) {
	in, err := acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer release(in)
	if err := in.checkLayout(); err != nil {
		t.Fatal(err)
	}
	saved := wasmLayout[len(wasmLayout)-1]
	wasmLayout[len(wasmLayout)-1]++
	err = in.checkLayout()
	wasmLayout[len(wasmLayout)-1] = saved
	if err == nil || !strings.Contains(err.Error(), "lays out") {
		t.Fatalf("a wrong offset was not caught: %v", err)
	}
}

// Every name table of abi.go agrees with the module's status and usage names where they
// overlap, and the status names come from the module.
func TestStatusNamesFromModule(t *testing.T) {
	if got := StatusBusy.String(); got != "WL_STATUS_BUSY" {
		t.Fatalf("StatusBusy.String() = %q", got)
	}
	if got := Status(999).String(); got != "WL_STATUS_UNKNOWN" {
		t.Fatalf("Status(999).String() = %q", got)
	}
	if got := usageName(1); got != "time_went_backwards" {
		t.Fatalf("usageName(1) = %q", got)
	}
}

// A closed engine's instance goes back to the pool and serves the next engine, with a
// fresh engine inside it; engines in use each have their own.
func TestInstancesAreReused(t *testing.T) {
	a, err := NewEngine(`"iam"`, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewEngine(`"iam"`, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a.h.in == b.h.in {
		t.Fatal("two open engines share an instance")
	}
	if _, err := a.Submit("role/a", 0, SubmitOptions{}); err != nil {
		t.Fatal(err)
	}
	ina, inb := a.h.in, b.h.in
	a.Close()
	b.Close()
	c, err := NewEngine(`"iam"`, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.h.in != inb && c.h.in != ina {
		t.Fatal("a new engine did not reuse an idle instance")
	}
	stats, err := c.StatsJSON()
	if err != nil || !strings.Contains(stats, `"submitted":0`) {
		t.Fatalf("a reused instance's engine is not fresh: %s %v", stats, err)
	}
}

// Many engines used from many goroutines at once, each with its own instance.
func TestEnginesInParallel(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := NewEngine(`"iam"`, 1)
			if err != nil {
				errs <- err
				return
			}
			defer e.Close()
			for i := 0; i < 50; i++ {
				op, err := e.Submit("role/a", uint64(i), SubmitOptions{})
				if err == nil {
					_, err = e.PollCommand()
				}
				if err == nil {
					err = e.Handle(uint64(i), Input{Kind: Cancel, Op: op})
				}
				if err != nil {
					errs <- err
					return
				}
				for {
					c, err := e.PollCommand()
					if err != nil {
						errs <- err
						return
					}
					if c == nil {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// A trap inside the module (here an engine pointer outside its memory; a panic in
// writelane traps the same way) is StatusPanicked for that call and StatusPoisoned for
// the engine's later calls; the instance is dropped, not pooled, and other engines work.
func TestTrapPoisonsOnlyThatEngine(t *testing.T) {
	e, err := NewEngine(`"iam"`, 1)
	if err != nil {
		t.Fatal(err)
	}
	in := e.h.in
	_, err = in.call(fHandleTimeout, 0xFFFFFFF0, 0)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != StatusPanicked {
		t.Fatalf("a trap gave %v", err)
	}
	if _, err := e.Submit("role/a", 0, SubmitOptions{}); !errors.As(err, &se) || se.Status != StatusPoisoned {
		t.Fatalf("the next call gave %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	pool.mu.Lock()
	for _, idle := range pool.idle {
		if idle == in {
			t.Error("a trapped instance went back to the pool")
		}
	}
	pool.mu.Unlock()
	other, err := NewEngine(`"iam"`, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Submit("role/a", 0, SubmitOptions{}); err != nil {
		t.Fatal(err)
	}
}
