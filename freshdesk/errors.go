package freshdesk

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Sentinel errors. An *APIError matches the one for its status with
// errors.Is, so callers can write errors.Is(err, freshdesk.ErrNotFound).
var (
	// ErrUnauthorized is matched by a 401 answer: the API key is wrong.
	ErrUnauthorized = errors.New("freshdesk: unauthorized")
	// ErrForbidden is matched by a 403 answer from the Freshdesk API.
	ErrForbidden = errors.New("freshdesk: forbidden")
	// ErrNotFound is matched by a 404 answer: the ticket (or other object) does not exist.
	ErrNotFound = errors.New("freshdesk: not found")
	// ErrRateLimited is matched by a *RateLimitError.
	ErrRateLimited = errors.New("freshdesk: rate limited")
	// ErrAttachmentExpired is returned when an attachment URL still answers
	// 403 after the conversations were listed again for a fresh URL.
	ErrAttachmentExpired = errors.New("freshdesk: attachment url expired")
)

// FieldError is one entry of the "errors" array of a Freshdesk error body.
// Code is the machine-readable part (missing_field, invalid_value, ...).
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
	Code    string `json:"code"`
}

// APIError is a non-2xx answer from the Freshdesk API. It decodes both error
// shapes Freshdesk uses: {"description", "errors": [{field, message, code}]}
// for validation errors and a top-level {"code", "message"} (e.g. 401).
type APIError struct {
	Method      string
	Path        string // URL path, without query or credentials
	StatusCode  int
	Code        string // top-level code, or the first field error's code
	Field       string // the first field error's field, if any
	Message     string // top-level message, or the first field error's message
	Description string
	Errors      []FieldError
}

// Error describes the call, the status and Freshdesk's codes and messages.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "freshdesk: %s %s: %d %s", e.Method, e.Path, e.StatusCode, strings.ToLower(http.StatusText(e.StatusCode)))
	if e.Description != "" {
		fmt.Fprintf(&b, ": %s", e.Description)
	}
	switch {
	case len(e.Errors) > 0:
		for i, fe := range e.Errors {
			sep := "; "
			if i == 0 {
				sep = ": "
			}
			fmt.Fprintf(&b, "%s%s", sep, fe.Code)
			if fe.Field != "" {
				fmt.Fprintf(&b, " (%s)", fe.Field)
			}
			if fe.Message != "" {
				fmt.Fprintf(&b, " %s", fe.Message)
			}
		}
	case e.Code != "" || e.Message != "":
		b.WriteString(": ")
		b.WriteString(strings.TrimSpace(e.Code + " " + e.Message))
	}
	return strings.TrimRight(b.String(), ". ")
}

// Is reports whether the error's status matches one of the sentinels.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	}
	return false
}

// RateLimitError reports a 429 answer that was not retried: the retries
// were used up or Retry-After asked for a longer wait than Config.MaxRetryWait.
type RateLimitError struct {
	Path       string
	RetryAfter time.Duration
}

// Error says which call was rate limited and for how long.
func (e *RateLimitError) Error() string {
	return fmt.Sprintf("freshdesk: %s: rate limited, retry after %s", e.Path, e.RetryAfter)
}

// Is makes errors.Is(err, ErrRateLimited) hold.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// maxErrorBody bounds how much of an error body is read.
const maxErrorBody = 64 << 10

// decodeAPIError builds an *APIError from an error answer's status and body.
// It never fails: an empty or non-JSON body leaves the detail fields empty.
func decodeAPIError(method, path string, status int, body []byte) *APIError {
	e := &APIError{Method: method, Path: path, StatusCode: status}
	var raw struct {
		Code        json.RawMessage `json:"code"`
		Message     json.RawMessage `json:"message"`
		Description json.RawMessage `json:"description"`
		Errors      json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(body, &raw) != nil {
		return e
	}
	e.Code = lenientString(raw.Code)
	e.Message = lenientString(raw.Message)
	e.Description = lenientString(raw.Description)
	var items []json.RawMessage
	if json.Unmarshal(raw.Errors, &items) == nil {
		for _, it := range items {
			var f struct {
				Field   json.RawMessage `json:"field"`
				Message json.RawMessage `json:"message"`
				Code    json.RawMessage `json:"code"`
			}
			if json.Unmarshal(it, &f) != nil {
				continue
			}
			e.Errors = append(e.Errors, FieldError{
				Field:   lenientString(f.Field),
				Message: lenientString(f.Message),
				Code:    lenientString(f.Code),
			})
		}
	}
	if len(e.Errors) > 0 {
		if e.Code == "" {
			e.Code = e.Errors[0].Code
		}
		if e.Message == "" {
			e.Message = e.Errors[0].Message
		}
		e.Field = e.Errors[0].Field
	}
	return e
}

// lenientString returns a JSON string's value, a number's or bool's text,
// and "" for anything else.
func lenientString(m json.RawMessage) string {
	if len(m) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(m, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(m, &n) == nil {
		return n.String()
	}
	var b bool
	if json.Unmarshal(m, &b) == nil {
		return fmt.Sprint(b)
	}
	return ""
}
