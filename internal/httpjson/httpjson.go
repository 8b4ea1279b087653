// Package httpjson holds what vigia's HTTP handlers share: errors are JSON
// objects {"error": "..."}, including the replies for a path no handler
// serves and for a method a path is not served for.
package httpjson

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Error writes {"error": msg} with status code.
func Error(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg}) // cannot fail
	Write(w, code, b)
}

// Write writes body, a JSON value, and a newline with status code. It may
// append to body.
func Write(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}

// Routes returns a handler that serves mux and answers the requests mux
// has no route for with JSON errors instead of ServeMux's plain text: 405
// with an Allow header when the path is served for other methods, else
// 404.
func Routes(mux *http.ServeMux) http.Handler { return routes{mux} }

type routes struct{ mux *http.ServeMux }

// NotServed, registered for a method and path, keeps a more general
// pattern (such as "DELETE /alerts/{id}" for "DELETE /alerts/history")
// from serving them: Routes answers them as a method the path is not
// served for.
type NotServed struct{}

// ServeHTTP is not called through Routes.
func (NotServed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	Error(w, http.StatusMethodNotAllowed, r.Method+" "+r.URL.Path+": method not allowed")
}

// served reports whether mux has a handler for r.
func (rt routes) served(r *http.Request) bool {
	h, pattern := rt.mux.Handler(r)
	return pattern != "" && h != http.Handler(NotServed{})
}

func (rt routes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rt.served(r) {
		rt.mux.ServeHTTP(w, r)
		return
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		other := *r
		other.Method = m
		if rt.served(&other) {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		Error(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	Error(w, http.StatusMethodNotAllowed, r.Method+" "+r.URL.Path+": method not allowed, use "+strings.Join(allow, " or "))
}
