package native

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vigia-mon/vigia/internal/alert"
	"github.com/vigia-mon/vigia/internal/native/wire"
	"github.com/vigia-mon/vigia/internal/query"
)

var replyAlertsDisabled = []byte("503 Alerts are disabled on this server\n")

// exec executes a parsed request other than LOG and queues its reply.
func (c *conn) exec() error {
	r := &c.req
	switch r.Cmd {
	case wire.Ping:
		c.out = append(c.out, wire.ReplyPong...)
	case wire.Help:
		c.out = append(c.out, wire.ReplyHelp...)
	case wire.Query:
		return c.query()
	case wire.Metrics:
		return c.metrics()
	case wire.NewAlert, wire.Alerts, wire.DeleteAlert, wire.Subscribe:
		if c.s.opts.Alerts == nil {
			c.out = append(c.out, replyAlertsDisabled...)
			return nil
		}
		return c.alerts()
	}
	return nil
}

// query answers QUERY: the windowed aggregate of every series named id.
func (c *conn) query() error {
	r := &c.req
	pts, err := c.qx.Run(c.s.opts.Store, query.Spec{
		Name: r.ID, Op: r.Op, Step: r.Secs * 1000,
		From: r.From, HasFrom: r.HasFrom, To: r.To, HasTo: r.HasTo,
		MaxPoints: c.s.opts.MaxQueryPoints, Budget: c.s.opts.QueryBudget,
	})
	// A big reply is charged to the budget too, until the writer has sent
	// it: the windows are let go once it is built, the reply is not.
	var charge int64
	if err == nil && len(pts) > bigReplyPoints {
		charge = query.ReplyBytes(len(pts))
		if err = c.qx.Charge().Add(charge); err != nil {
			charge = 0
			c.qx.Release() // as Run does when it fails
		}
	}
	switch {
	case errors.Is(err, query.ErrBusy):
		c.s.opts.QueryBudget.CountRefusal()
		c.out = append(c.out, wire.ReplyBusy...)
		return nil
	case errors.Is(err, query.ErrTooLarge):
		c.s.opts.QueryBudget.CountRefusal()
		c.s.stats.bad.Add(1)
		c.out = append(c.out, "400 Bad Request -- QUERY needs more memory than --max-query-memory allows: use a larger secs or a narrower from/to\n"...)
		return nil
	case errors.Is(err, query.ErrNotFound):
		c.out = append(c.out, wire.ReplyMetricNotFound...)
		return nil
	case errors.Is(err, query.ErrTooManyPoints):
		c.s.stats.bad.Add(1)
		c.out = fmt.Appendf(c.out, "400 Bad Request -- QUERY would answer more than %d windows: use a larger secs or a narrower from/to\n", c.s.opts.MaxQueryPoints)
		return nil
	case err != nil:
		return c.internal(err)
	}
	c.out = append(c.out, "200 "...)
	c.out = query.AppendPoints(c.out, r.Op, pts)
	c.out = append(c.out, '\n')
	c.qx.Charge().Hand(charge) // the reply's part stays taken, with the reply
	c.qx.Release()             // not kept while the connection idles
	if charge > 0 {
		// Handed over now, with its charge, which the writer gives back
		// once the reply is sent (recycle). handle submitted the batch.
		c.submitUnit(nil, charge)
	}
	return nil
}

// bigReplyPoints is the most windows a QUERY reply holds without being
// charged to the query budget (about 200 KiB of text).
const bigReplyPoints = 8192

// metrics answers METRICS [prefix]: a JSON array of series names, sorted,
// at most MaxMetrics of them.
func (c *conn) metrics() error {
	names := c.s.opts.Store.Names(string(c.req.ID))
	if names == nil {
		names = []string{}
	}
	if len(names) > c.s.opts.MaxMetrics {
		names = names[:c.s.opts.MaxMetrics]
	}
	// Names print as they were logged: no HTML escapes (a\u003cb for
	// a<b), which a script would send back in a QUERY. Encode ends the
	// line.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(names); err != nil {
		return c.internal(err)
	}
	c.out = append(c.out, "200 "...)
	c.out = append(c.out, b.Bytes()...)
	return nil
}

// alerts answers NEW-ALERT, ALERTS, DELETE-ALERT and SUBSCRIBE.
func (c *conn) alerts() error {
	r := &c.req
	a := c.s.opts.Alerts
	switch r.Cmd {
	case wire.NewAlert:
		_, err := a.AddRule(string(r.ID), r.Op, r.Secs, r.Value, string(r.Cmp))
		switch {
		case err == nil:
			c.out = append(c.out, wire.ReplyAlertRegistered...)
		case errors.Is(err, alert.ErrMetricNotFound):
			c.out = append(c.out, wire.ReplyMetricNotFound...)
		case errors.Is(err, alert.ErrBadRule):
			c.s.stats.bad.Add(1)
			c.out = append(c.out, wire.ReplyFor(wire.ErrNewAlertUsage)...)
		case errors.Is(err, alert.ErrTooManyRules):
			c.s.stats.bad.Add(1)
			c.out = append(c.out, "400 Bad Request -- too many alerts, delete some first\n"...)
		default:
			return c.internal(err)
		}
	case wire.Alerts:
		b, err := a.ListJSON()
		if err != nil {
			return c.internal(err)
		}
		c.out = append(c.out, "200 "...)
		c.out = append(c.out, b...)
		c.out = append(c.out, '\n')
	case wire.DeleteAlert:
		switch err := a.DeleteRule(r.N); {
		case err == nil:
			c.out = append(c.out, wire.ReplyAlertDeleted...)
		case errors.Is(err, alert.ErrNotFound):
			c.out = append(c.out, wire.ReplyAlertNotFound...)
		default:
			return c.internal(err)
		}
	case wire.Subscribe:
		c.out = append(c.out, wire.ReplySubscribed...)
		if c.unsub == nil {
			// The writer pushes the events after this reply.
			events, cancel := a.Subscribe()
			c.unsub = cancel
			c.submitBatch()
			c.submitUnit(events, 0)
		}
	}
	return nil
}
