// Package freshdesktest is an in-memory Freshdesk API v2 on a loopback
// httptest server, for testing code that uses package freshdesk (or any
// Freshdesk client).
//
// The shortest useful program:
//
//	srv := freshdesktest.New()
//	defer srv.Close()
//	tk := srv.AddTicket(freshdesktest.Ticket{Subject: "Export fails"})
//	srv.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<p>Log attached</p>",
//		Attachments: []freshdesktest.Attachment{{Name: "x.log", Content: []byte("...")}}})
//	c := srv.Client() // a *freshdesk.Client with the server's API key
//	convs, err := c.Conversations(ctx, tk.ID)
//
// It serves GET /api/v2/tickets/{id} (include=requester, conversations),
// PUT /api/v2/tickets/{id} (custom_fields, unknown fields answer 400
// invalid_field; status, 2 to 5, others answer 400 invalid_value),
// GET /api/v2/tickets/{id}/conversations (page, per_page up to 100, a Link
// header with rel="next" until the last page), POST
// /api/v2/tickets/{id}/notes (JSON or multipart with attachments[]) and POST
// /api/v2/tickets/{id}/reply (JSON; a public outgoing conversation of the
// API key's agent from SupportEmail, answered 201). Answers
// carry the fields and headers of the recorded shapes in internal/fixtures,
// and errors use both Freshdesk error shapes.
//
// Requests need HTTP basic auth with the API key as user (APIKey); anything
// else answers 401 {"code":"invalid_credentials",...}. An unknown ticket
// answers an empty 404.
//
// Attachments are served under /s3/ at pre-signed URLs like S3's: they expire
// (WithURLExpiry, WithClock), ExpireAttachmentURLs makes the URLs handed out
// so far answer 403, and a request that also carries an Authorization header
// answers 400 as S3 does.
//
// Failures: RateLimitNext (429 with Retry-After), FailNext (any status),
// FailWhen (a predicate), SetLatency. Requests returns every request
// received, with the status answered.
//
// # Testing
//
// freshdesktest is itself a test package: import it from _test.go files,
// examples and the tour. NewServer(t) registers Close with t.Cleanup. Its own
// tests check its answers against the fixtures in internal/fixtures.
package freshdesktest
