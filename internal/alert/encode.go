package alert

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"log/slog"
	"math"
	"strconv"

	"github.com/vigia-mon/vigia/internal/query"
)

// jsonFloat is a float64 that encodes as the native protocol prints values
// (Python repr: 1.0, 0.5, 1e+16), which is valid JSON for every finite
// value. JSON has no infinities or NaN, so those encode as the strings
// "inf", "-inf" and "nan" (as Prometheus encodes every sample value as a
// string); a SUM can overflow to infinity even though every sample and
// limit is finite.
type jsonFloat float64

// MarshalJSON implements json.Marshaler.
func (f jsonFloat) MarshalJSON() ([]byte, error) {
	if b, ok := query.AppendJSONNonFinite(nil, float64(f)); ok {
		return b, nil
	}
	return query.AppendRepr(nil, float64(f)), nil
}

// UnmarshalJSON implements json.Unmarshaler; it takes what MarshalJSON
// writes.
func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		switch s {
		case "inf":
			*f = jsonFloat(math.Inf(1))
		case "-inf":
			*f = jsonFloat(math.Inf(-1))
		case "nan":
			*f = jsonFloat(math.NaN())
		default:
			return errors.New("not a number: " + strconv.Quote(s))
		}
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return errors.New("not a number: " + string(b))
	}
	*f = jsonFloat(v)
	return nil
}

// LogValue implements slog.LogValuer: a finite value logs as a number and
// a non-finite one as the string the JSON holds ("inf"), since slog's JSON
// handler cannot encode an infinite float64 and would log an error in
// place of the value.
func (f jsonFloat) LogValue() slog.Value {
	v := float64(f)
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return slog.StringValue(string(query.AppendRepr(nil, v)))
	}
	return slog.Float64Value(v)
}

// fmtTime formats unix ms as RFC 3339 UTC with milliseconds.
func fmtTime(ms int64) string { return string(query.AppendTime(nil, ms)) }

// optTime formats unix ms, or returns nil (JSON null) for 0.
func optTime(ms int64) *string {
	if ms == 0 {
		return nil
	}
	s := fmtTime(ms)
	return &s
}

// event is one notification: an alert that fires, keeps firing or
// resolves. Its JSON is what subscribers receive, what the history keeps
// and what docs/alerts.md documents.
type event struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	Metric      string    `json:"metric"`
	Op          string    `json:"op"`
	Secs        int64     `json:"secs"`
	Limit       jsonFloat `json:"limit"`
	Cmp         string    `json:"cmp"`
	State       string    `json:"state"`
	Value       jsonFloat `json:"value"`
	WindowStart string    `json:"window_start"`
	Windows     int       `json:"breaching_windows"`
	ActiveAt    string    `json:"active_at"`
	Time        string    `json:"time"`

	timeMs, activeAtMs int64
	deleted            bool   // resolved because the alert was deleted
	raw                []byte // the JSON above, shared read-only by every receiver
}

// alertJSON is one element of ListJSON.
type alertJSON struct {
	ID              int64      `json:"id"`
	Name            string     `json:"name"`
	Metric          string     `json:"metric"`
	Op              string     `json:"op"`
	Secs            int64      `json:"secs"`
	Limit           jsonFloat  `json:"limit"`
	Cmp             string     `json:"cmp"`
	State           string     `json:"state"`
	Since           string     `json:"since"`
	Created         string     `json:"created"`
	ActiveAt        *string    `json:"active_at"`
	LastCheck       *string    `json:"last_check"`
	LastValue       *jsonFloat `json:"last_value"`
	LastWindowStart *string    `json:"last_window_start"`
	Breaching       int        `json:"breaching_windows"`
	Series          int        `json:"series"`
}

func (r *rule) toJSON() alertJSON {
	a := alertJSON{
		ID: r.id, Name: r.name(), Metric: r.metric, Op: r.op.String(), Secs: r.secs,
		Limit: jsonFloat(r.limit), Cmp: r.cmp.String(), State: r.st.String(),
		Since: fmtTime(r.since), Created: fmtTime(r.created),
		ActiveAt: optTime(r.activeAt), LastCheck: optTime(r.lastCheck),
		Breaching: r.breaching,
	}
	if r.hasValue {
		v := jsonFloat(r.lastValue)
		a.LastValue = &v
		s := fmtTime(r.lastWin)
		a.LastWindowStart = &s
	}
	if r.watch != nil {
		a.Series = len(r.watch.refs)
	}
	return a
}

// ruleRecord is a rule as stored in the alert_rules bucket.
type ruleRecord struct {
	V          int        `json:"v"`
	ID         int64      `json:"id"`
	Metric     string     `json:"metric"`
	Op         string     `json:"op"`
	Secs       int64      `json:"secs"`
	Limit      jsonFloat  `json:"limit"`
	Cmp        string     `json:"cmp"`
	Created    int64      `json:"created_ms"`
	State      string     `json:"state"`
	Since      int64      `json:"since_ms"`
	ActiveAt   int64      `json:"active_at_ms,omitempty"`
	LastCheck  int64      `json:"last_check_ms,omitempty"`
	LastValue  *jsonFloat `json:"last_value,omitempty"`
	LastWindow int64      `json:"last_window_ms,omitempty"`
	Breaching  int        `json:"breaching,omitempty"`
}

const recordVersion = 1

func (r *rule) record() ruleRecord {
	rec := ruleRecord{
		V: recordVersion, ID: r.id, Metric: r.metric, Op: r.op.String(), Secs: r.secs,
		Limit: jsonFloat(r.limit), Cmp: r.cmp.String(), Created: r.created,
		State: r.st.String(), Since: r.since, ActiveAt: r.activeAt,
		LastCheck: r.lastCheck, Breaching: r.breaching,
	}
	if r.hasValue {
		v := jsonFloat(r.lastValue)
		rec.LastValue = &v
		rec.LastWindow = r.lastWin
	}
	return rec
}

// ruleFromRecord checks a stored record as strictly as AddRule checks a new
// rule.
func ruleFromRecord(rec ruleRecord) (*rule, error) {
	if rec.V != recordVersion {
		return nil, errors.New("unknown record version " + strconv.Itoa(rec.V))
	}
	op, ok := query.ParseOp([]byte(rec.Op))
	if !ok {
		return nil, errors.New("unknown op " + strconv.Quote(rec.Op))
	}
	sp, err := validate(rec.Metric, op, rec.Secs, float64(rec.Limit), rec.Cmp)
	if err != nil {
		return nil, err
	}
	st, ok := parseState(rec.State)
	if !ok || rec.ID < 1 {
		return nil, errors.New("bad state or id")
	}
	r := &rule{
		id: rec.ID, spec: sp, created: rec.Created, st: st, since: rec.Since,
		activeAt: rec.ActiveAt, lastCheck: rec.LastCheck, breaching: rec.Breaching,
	}
	if rec.LastValue != nil {
		r.hasValue, r.lastValue, r.lastWin = true, float64(*rec.LastValue), rec.LastWindow
	}
	return r, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// seal returns b followed by its CRC-32C, big-endian.
func seal(b []byte) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// unseal returns the payload of a sealed value, or false when the checksum
// does not match.
func unseal(v []byte) ([]byte, bool) {
	if len(v) < 4 {
		return nil, false
	}
	p := v[:len(v)-4]
	return p, crc32.Checksum(p, castagnoli) == binary.BigEndian.Uint32(v[len(v)-4:])
}

// marshal is json.Marshal without HTML escaping: the JSON goes to protocol
// lines, logs and API replies, where "cmp":">" reads better than
// "cmp":"\u003e". The result has no trailing newline.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}
