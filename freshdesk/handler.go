package freshdesk

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/opskit/opskit/internal/secret"
)

// Handler serves the bridge's HTTP API:
//
//	POST /escalate/{ticketID}
//
// It requires "Authorization: Bearer <Token>" (compared in constant time;
// missing or wrong gives 401) and answers 200 with the Escalation as JSON,
// {"issue_url", "created", "notes_added", "attachments_copied"}. An unknown
// ticket gives 404, a bad ticket ID 400, any other failure 502 with
// {"error": "..."} (plus what was done before it). CORS preflight requests
// are answered only for AllowedOrigin (403 for any other origin), so the
// userscript running on the Freshdesk ticket page can call the bridge.
//
// The escalation runs under EscalateTimeout and goes on if the client
// disconnects, so a closed browser tab does not leave it half done.
//
// With BridgeConfig.Intake, POST /escalate/{ticketID} queues the
// escalation instead (Enqueue) and answers 202 with
// {"status": "queued", "id", "ticket_id"} and a Location header, or 503
// with {"error"} when the intake could not store it. The escalation's
// outcome is then served, with the same token, by
//
//	GET /escalations/{id}
//
// which answers 200 with an EscalationStatus ("status" is "queued",
// "done" or "failed", with the Escalation's fields and "error"), 404 for an
// unknown or expired ID, 502 when the ResultStore cannot be read.
func (b *Bridge) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /escalate/{ticketID}", b.serveEscalate)
	mux.HandleFunc("OPTIONS /escalate/{ticketID}", b.preflight(http.MethodPost))
	mux.HandleFunc("GET /escalations/{id}", b.serveResult)
	mux.HandleFunc("OPTIONS /escalations/{id}", b.preflight(http.MethodGet))
	return mux
}

func (b *Bridge) cors(w http.ResponseWriter, r *http.Request) bool {
	w.Header().Add("Vary", "Origin")
	o := r.Header.Get("Origin")
	if o == "" || b.cfg.AllowedOrigin == "" || o != strings.TrimRight(b.cfg.AllowedOrigin, "/") {
		return false
	}
	w.Header().Set("Access-Control-Allow-Origin", o)
	return true
}

func (b *Bridge) preflight(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { b.servePreflight(w, r, method) }
}

func (b *Bridge) servePreflight(w http.ResponseWriter, r *http.Request, method string) {
	if !b.cors(w, r) || r.Header.Get("Access-Control-Request-Method") != method {
		w.Header().Del("Access-Control-Allow-Origin")
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	w.Header().Set("Access-Control-Allow-Methods", method)
	w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	w.Header().Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

type escalateAnswer struct {
	Escalation
	Error string `json:"error,omitempty"`
}

// authorized answers 401 and returns false unless r carries the token.
func (b *Bridge) authorized(w http.ResponseWriter, r *http.Request) bool {
	b.cors(w, r)
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !secret.Equal(strings.TrimSpace(tok), b.cfg.Token.Reveal()) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="freshdesk-bridge"`)
		writeAnswer(w, http.StatusUnauthorized, errorAnswer{"missing or wrong bearer token"})
		return false
	}
	return true
}

func (b *Bridge) serveEscalate(w http.ResponseWriter, r *http.Request) {
	if !b.authorized(w, r) {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("ticketID"), 10, 64)
	if err != nil || id <= 0 {
		writeAnswer(w, http.StatusBadRequest, errorAnswer{"ticket id must be a positive integer"})
		return
	}
	if b.cfg.Intake != nil {
		qid, err := b.Enqueue(r.Context(), id)
		if err != nil {
			b.logger.Error("escalation not queued", "ticket", id, "err", err)
			writeAnswer(w, http.StatusServiceUnavailable, errorAnswer{err.Error()})
			return
		}
		w.Header().Set("Location", "/escalations/"+qid)
		writeAnswer(w, http.StatusAccepted, EscalationStatus{ID: qid, TicketID: id, Status: StatusQueued})
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), b.cfg.EscalateTimeout)
	defer cancel()
	esc, err := b.Escalate(ctx, id)
	var ae *APIError
	switch {
	case err == nil:
		writeAnswer(w, http.StatusOK, escalateAnswer{Escalation: esc})
	case errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound && strings.HasSuffix(ae.Path, "/tickets/"+strconv.FormatInt(id, 10)):
		writeAnswer(w, http.StatusNotFound, escalateAnswer{Escalation: esc, Error: err.Error()})
	default:
		b.logger.Error("escalation failed", "ticket", id, "err", err)
		writeAnswer(w, http.StatusBadGateway, escalateAnswer{Escalation: esc, Error: err.Error()})
	}
}

func (b *Bridge) serveResult(w http.ResponseWriter, r *http.Request) {
	if !b.authorized(w, r) {
		return
	}
	st, err := b.Result(r.Context(), r.PathValue("id"))
	switch {
	case err == nil:
		writeAnswer(w, http.StatusOK, st)
	case errors.Is(err, ErrUnknownEscalation):
		writeAnswer(w, http.StatusNotFound, errorAnswer{err.Error()})
	default:
		b.logger.Error("escalation status unreadable", "id", r.PathValue("id"), "err", err)
		writeAnswer(w, http.StatusBadGateway, errorAnswer{err.Error()})
	}
}

type errorAnswer struct {
	Error string `json:"error"`
}

func writeAnswer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
