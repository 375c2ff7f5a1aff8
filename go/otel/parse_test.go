package otel

import (
	"encoding/json"
	"testing"
)

// parse reads what encoding/json reads, escaped entity names included.
func TestParseMatchesEncodingJSON(t *testing.T) {
	for _, text := range []string{
		`{"type":"submitted","op":7,"entity":"role/a","at":12}`,
		`{"type":"lane_wait_ended","op":8,"entity":"role/\"op\":9,\\x","at":40,"waited_ms":28}`,
		`{"type":"conflict","op":3,"entity":"role/é","at":5,"attempt":2,"code":"ConcurrentModification"}`,
		`{"type":"retry_scheduled","op":3,"entity":"r","at":5,"failures":1,"delay_ms":140,"class":"conflict","cost":5}`,
		`{"type":"gave_up","op":4,"entity":"r","at":9,"attempts":3,"reason":"attempts_exhausted"}`,
		`{"type":"committed","op":4,"entity":"r\u0000","at":9,"attempts":11}`,
		`{"type":"spike_started","entity":"role/hot","at":100,"conflicts":5,"until":5100}`,
	} {
		var want struct {
			Type, Entity, Reason         string
			Op                           *uint64
			At, Until                    uint64
			WaitedMs                     uint64 `json:"waited_ms"`
			DelayMs                      uint64 `json:"delay_ms"`
			Attempt, Attempts, Conflicts int
		}
		if err := json.Unmarshal([]byte(text), &want); err != nil {
			t.Fatal(err)
		}
		got, ok := parse(text)
		if !ok || got.Type != want.Type || got.Entity != want.Entity || got.Reason != want.Reason ||
			got.HasOp != (want.Op != nil) || (want.Op != nil && got.Op != *want.Op) || got.At != want.At ||
			got.WaitedMs != want.WaitedMs || got.DelayMs != want.DelayMs || got.Until != want.Until ||
			got.Attempt != want.Attempt || got.Attempts != want.Attempts || got.Conflicts != want.Conflicts {
			t.Errorf("%s: parsed %+v, encoding/json %+v", text, got, want)
		}
	}
}
