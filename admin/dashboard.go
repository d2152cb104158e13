package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// Dashboard is what the dashboard's data endpoints read and do beyond
// Source. A Source that also implements it gets them; without it they
// answer 501.
type Dashboard interface {
	// DeadLetters pages through the dead letters of (topic, group),
	// oldest first: at most limit from offset, and how many there are.
	DeadLetters(ctx context.Context, topic, group string, offset, limit int) (total int, items []DeadLetter, err error)
	// Replay re-queues one dead letter for its group only, due at once.
	Replay(ctx context.Context, topic, id, group string) error
	// DeleteDead discards one dead letter of group for good.
	DeleteDead(ctx context.Context, topic, id, group string) error
	// PreparedTxs pages through the prepared messages: items is the JSON
	// array of $KQ.ADMIN.TX.LIST's items (with their age and checks).
	PreparedTxs(ctx context.Context, offset, limit int) (total int, items json.RawMessage, err error)
}

// DeadLetter is one dead letter as the Dashboard source gives it; the
// endpoint serves a preview of its body, not the body.
type DeadLetter struct {
	ID          string
	Topic       string
	MessageType string
	Group       string // the group that will not receive it
	Publisher   string // the publishing group, if it named one
	Reason      string
	At          time.Time // when it became a dead letter
	Created     time.Time
	Properties  map[string]string
	Body        []byte
}

// Refusal is an error a Dashboard source returns to be served with its own
// HTTP status (400 bad request, 409 conflict, 501 not implemented, ...);
// any other error is a 500, or a 503 for a read.
type Refusal struct {
	Status int
	Err    error
}

func (r *Refusal) Error() string { return r.Err.Error() }

// Unwrap returns the refused error.
func (r *Refusal) Unwrap() error { return r.Err }

// PreviewBytes caps the body bytes a dead letter's preview shows.
const PreviewBytes = 512

// maxPage caps the limit of a page request.
const maxPage = 200

// csrfHeader is the header every dashboard POST must carry: the page's
// fetch sets it; a cross-site form cannot, and a cross-site fetch that sets
// it needs a CORS preflight that this server never allows.
const csrfHeader = "X-Kitenats"

//go:embed dashboard
var assets embed.FS

// dashboard serves the dashboard page, its assets and its data endpoints.
type dashboard struct {
	src    Source
	dash   Dashboard // nil: the source has none
	secret [sha256.Size]byte
	open   bool // no admin secret: open like the rest of the admin HTTP
}

// registerDashboard adds the dashboard's routes to mux.
func registerDashboard(mux *http.ServeMux, cfg Config, src Source) {
	d := &dashboard{src: src, open: cfg.AdminSecret == ""}
	d.secret = sha256.Sum256([]byte(cfg.AdminSecret))
	d.dash, _ = src.(Dashboard)
	static, err := fs.Sub(assets, "dashboard")
	if err != nil {
		panic(err) // the embedded directory is there: a build error otherwise
	}
	files := http.FileServerFS(static)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/dashboard", http.StatusFound)
	})
	page := d.guard(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/"
		files.ServeHTTP(w, r2)
	})
	mux.Handle("GET /dashboard", page)
	mux.Handle("GET /dashboard/{$}", page)
	mux.Handle("GET /dashboard/{file}", d.guard(http.StripPrefix("/dashboard", files).ServeHTTP))
	mux.Handle("GET /api/stat", d.guard(d.stat))
	mux.Handle("GET /api/binds", d.guard(d.binds))
	mux.Handle("GET /api/dlq", d.guard(d.deadLetters))
	mux.Handle("POST /api/dlq/replay", d.guard(d.action(d.replay)))
	mux.Handle("POST /api/dlq/delete", d.guard(d.action(d.deleteDead)))
	mux.Handle("GET /api/tx", d.guard(d.preparedTxs))
}

// guard serves h to the admin only, when there is an admin secret: HTTP
// Basic auth with user "admin" and the secret, compared in constant time.
// It sets the headers every dashboard response carries.
func (d *dashboard) guard(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Cache-Control", "no-store")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'none'")
		if !d.open && !d.authorized(r) {
			hd.Set("WWW-Authenticate", `Basic realm="kitenats admin", charset="UTF-8"`)
			http.Error(w, "the admin secret is required (user admin)", http.StatusUnauthorized)
			return
		}
		h(w, r)
	})
}

// authorized reports whether r carries user admin and the admin secret.
func (d *dashboard) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	// Hashes of equal length: the comparison takes the same time whatever
	// the secret's length and the guess.
	p := sha256.Sum256([]byte(pass))
	u := sha256.Sum256([]byte(user))
	admin := sha256.Sum256([]byte("admin"))
	return subtle.ConstantTimeCompare(p[:], d.secret[:])&subtle.ConstantTimeCompare(u[:], admin[:]) == 1
}

func (d *dashboard) stat(w http.ResponseWriter, r *http.Request) {
	st, err := d.src.Stat(r.Context())
	if err != nil {
		serveError(w, err, http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, st)
}

func (d *dashboard) binds(w http.ResponseWriter, _ *http.Request) {
	bs, err := d.src.Bindings()
	if err != nil {
		serveError(w, err, http.StatusInternalServerError)
		return
	}
	writeJSON(w, bs)
}

// deadItem is one dead letter as /api/dlq serves it.
type deadItem struct {
	ID          string            `json:"id"`
	Topic       string            `json:"topic"`
	MessageType string            `json:"messageType"`
	Group       string            `json:"groupId"`
	Publisher   string            `json:"publishGroup,omitempty"`
	Reason      string            `json:"reason"`
	At          int64             `json:"at"`
	Created     int64             `json:"created"`
	Properties  map[string]string `json:"properties,omitempty"`
	Size        int               `json:"size"` // the body's bytes
	Preview     preview           `json:"preview"`
}

// preview shows the start of a body: as text when it is printable UTF-8,
// else as hex; Truncated when the body is longer than what is shown.
type preview struct {
	Encoding  string `json:"encoding"` // "text" or "hex"
	Data      string `json:"data"`
	Truncated bool   `json:"truncated"`
}

// previewOf is the preview of body, at most PreviewBytes of it.
func previewOf(body []byte) preview {
	p := body[:min(len(body), PreviewBytes)]
	cut := len(p) < len(body)
	if cut {
		// Drop a rune the cap split (at most 3 bytes of it).
		for i := 0; i < utf8.UTFMax-1 && len(p) > 0 && !utf8.Valid(p); i++ {
			p = p[:len(p)-1]
		}
	}
	if printable(p) {
		return preview{Encoding: "text", Data: string(p), Truncated: cut}
	}
	h := body[:min(len(body), PreviewBytes/2)]
	return preview{Encoding: "hex", Data: hex.EncodeToString(h), Truncated: len(h) < len(body)}
}

// printable reports whether p is valid UTF-8 of printable characters and
// ordinary white space.
func printable(p []byte) bool {
	if !utf8.Valid(p) {
		return false
	}
	for _, r := range string(p) {
		if !unicode.IsPrint(r) && r != '\n' && r != '\r' && r != '\t' {
			return false
		}
	}
	return true
}

// page is one page of a list, as the $KQ.ADMIN lists have it.
type page[T any] struct {
	Total  int `json:"total"`
	Offset int `json:"offset"`
	Limit  int `json:"limit"`
	Items  T   `json:"items"`
}

// pageArgs reads offset and limit (default 20, at most maxPage).
func pageArgs(r *http.Request) (offset, limit int, err error) {
	q := r.URL.Query()
	offset, limit = 0, 20
	if s := q.Get("offset"); s != "" {
		if offset, err = strconv.Atoi(s); err != nil || offset < 0 {
			return 0, 0, errors.New("offset: a number >= 0")
		}
	}
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit <= 0 {
			return 0, 0, errors.New("limit: a number > 0")
		}
	}
	return offset, min(limit, maxPage), nil
}

func (d *dashboard) deadLetters(w http.ResponseWriter, r *http.Request) {
	if d.dash == nil {
		http.Error(w, "no dead letters here", http.StatusNotImplemented)
		return
	}
	offset, limit, err := pageArgs(r)
	topic, group := r.URL.Query().Get("topic"), r.URL.Query().Get("group")
	if err == nil && (topic == "" || group == "") {
		err = errors.New("topic and group are required")
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	total, dls, err := d.dash.DeadLetters(r.Context(), topic, group, offset, limit)
	if err != nil {
		serveError(w, err, http.StatusServiceUnavailable)
		return
	}
	items := make([]deadItem, 0, len(dls))
	for _, dl := range dls {
		items = append(items, deadItem{ID: dl.ID, Topic: dl.Topic, MessageType: dl.MessageType, Group: dl.Group,
			Publisher: dl.Publisher, Reason: dl.Reason, At: dl.At.Unix(), Created: dl.Created.Unix(),
			Properties: dl.Properties, Size: len(dl.Body), Preview: previewOf(dl.Body)})
	}
	doc, err := json.Marshal(page[[]deadItem]{Total: total, Offset: offset, Limit: limit, Items: items})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, doc)
}

func (d *dashboard) preparedTxs(w http.ResponseWriter, r *http.Request) {
	if d.dash == nil {
		http.Error(w, "no transactions here", http.StatusNotImplemented)
		return
	}
	offset, limit, err := pageArgs(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	total, items, err := d.dash.PreparedTxs(r.Context(), offset, limit)
	if err != nil {
		serveError(w, err, http.StatusServiceUnavailable)
		return
	}
	if items == nil {
		items = json.RawMessage("[]")
	}
	doc, err := json.Marshal(page[json.RawMessage]{Total: total, Offset: offset, Limit: limit, Items: items})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, doc)
}

// letterRef names one dead letter: the body of the dead-letter actions.
type letterRef struct {
	Topic string `json:"topic"`
	ID    string `json:"id"`
	Group string `json:"groupId"`
}

// action serves a POST on one dead letter: it requires the CSRF header and
// a JSON body naming the letter, and answers {"ok":true}.
func (d *dashboard) action(do func(ctx context.Context, l letterRef) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(csrfHeader) != "1" {
			http.Error(w, "missing header "+csrfHeader+": 1 (the dashboard sets it)", http.StatusForbidden)
			return
		}
		if d.dash == nil {
			http.Error(w, "no dead letters here", http.StatusNotImplemented)
			return
		}
		var l letterRef
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if l.Topic == "" || l.ID == "" || l.Group == "" {
			http.Error(w, "body: topic, id and groupId are required", http.StatusBadRequest)
			return
		}
		if err := do(r.Context(), l); err != nil {
			serveError(w, err, http.StatusInternalServerError)
			return
		}
		writeJSON(w, json.RawMessage(`{"ok":true}`))
	}
}

func (d *dashboard) replay(ctx context.Context, l letterRef) error {
	return d.dash.Replay(ctx, l.Topic, l.ID, l.Group)
}

func (d *dashboard) deleteDead(ctx context.Context, l letterRef) error {
	return d.dash.DeleteDead(ctx, l.Topic, l.ID, l.Group)
}

// serveError serves err with its Refusal's status, else with status.
func serveError(w http.ResponseWriter, err error, status int) {
	var rf *Refusal
	if errors.As(err, &rf) && rf.Status >= 400 && rf.Status <= 599 {
		status = rf.Status
	}
	http.Error(w, err.Error(), status)
}
