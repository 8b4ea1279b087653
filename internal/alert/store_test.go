package alert

import (
	"bytes"
	"testing"
)

// FuzzRuleRecord feeds the decoder of stored rules, the one that reads the
// metadata file at startup, with damaged and hostile records: it must
// reject them with an error, never panic, and a record it takes must
// describe a valid rule that encodes back to a record decoding to the same
// rule.
func FuzzRuleRecord(f *testing.F) {
	for _, js := range []string{
		`{"v":1,"id":1,"metric":"cpu.load","op":"MAX","secs":60,"limit":90.0,"cmp":">","created_ms":1700000000000,"state":"inactive","since_ms":1700000000000}`,
		`{"v":1,"id":7,"metric":"q","op":"AVG","secs":300,"limit":-0.5,"cmp":"<=","created_ms":1,"state":"firing","since_ms":2,"active_at_ms":2,"last_check_ms":3,"last_value":"inf","last_window_ms":-60000,"breaching":4}`,
		`{"v":1,"id":2,"metric":"x","op":"LAST","secs":1,"limit":1e+308,"cmp":">=","created_ms":0,"state":"pending","since_ms":0,"last_value":"nan"}`,
		`{"v":2,"id":1}`, `{"v":1,"id":0,"metric":"x","op":"MAX","secs":1,"limit":1,"cmp":">","state":"firing"}`,
		`{}`, `null`, `[]`, ``,
	} {
		f.Add(int64(1), []byte(js), true)
	}
	f.Add(int64(1), []byte{0, 0, 0, 0}, false)
	f.Fuzz(func(t *testing.T, key int64, b []byte, sealed bool) {
		v := b
		if sealed {
			v = seal(bytes.Clone(b)) // let the fuzzer reach the JSON past the checksum
		}
		r, err := decodeRule(idKey(key), v)
		if err != nil {
			return
		}
		if r.id != key || r.id < 1 {
			t.Fatalf("took a rule with id %d under key %d", r.id, key)
		}
		if _, err := validate(r.metric, r.op, r.secs, r.limit, r.cmp.String()); err != nil {
			t.Fatalf("took an invalid rule: %v", err)
		}
		js, err := marshal(r.record())
		if err != nil {
			t.Fatalf("encode the rule taken: %v", err)
		}
		again, err := decodeRule(idKey(key), seal(js))
		if err != nil {
			t.Fatalf("decode %s: %v", js, err)
		}
		js2, _ := marshal(again.record())
		if !bytes.Equal(js, js2) {
			t.Fatalf("round trip changed the rule:\n%s\n%s", js, js2)
		}
	})
}
