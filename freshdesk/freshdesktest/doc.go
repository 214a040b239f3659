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
// PUT /api/v2/tickets/{id} (custom_fields, checked against their types;
// unknown fields answer 400 invalid_field; status, 2 to 5, others answer
// 400 invalid_value), GET /api/v2/tickets/{id}/conversations (page,
// per_page up to 100, a Link header with rel="next" until the last page),
// POST /api/v2/tickets/{id}/notes (JSON or multipart with attachments[])
// and POST /api/v2/tickets/{id}/reply (JSON; a public outgoing conversation
// of the API key's agent from SupportEmail, answered 201). Answers carry the
// fields and headers of the recorded shapes in internal/fixtures, and errors
// use both Freshdesk error shapes.
//
// # Behaving like Freshdesk
//
// Where code that passes against the fake could fail against Freshdesk, the
// fake does what Freshdesk's API v2 reference
// (https://developers.freshdesk.com/api/, cited by its section) says, by
// default. Validation errors answer 400 with Freshdesk's body,
// {"description":"Validation failed","errors":[{"field","message","code"}]};
// the codes are the documented ones, the messages are illustrative (key on
// the code, as the reference advises).
//
//	behaviour                                    | Freshdesk doc section                          | how to switch it
//	---------------------------------------------+------------------------------------------------+------------------------------------------
//	every API call uses credits of a per-minute  | Rate Limit (#ratelimit): per-minute limits by  | WithRateLimit(n) sets the credits a minute
//	window (700, Enterprise); every answer       | plan, X-RateLimit-Total / -Remaining /         | (default DefaultRateLimit); n <= 0 turns
//	carries X-RateLimit-Total, -Remaining,       | -Used-CurrentRequest on every response,        | the limit and the headers off; WithClock
//	-Used-CurrentRequest; invalid calls (400,    | "invalid requests count towards the limit"     | moves the window
//	404) count too                               |                                                |
//	the window resets a minute after it began;   | Rate Limit (#ratelimit): 429 with Retry-After  | as above; RateLimitNext still forces
//	a call needing more credits than remain      | in seconds                                     | 429s regardless of credits
//	answers 429 with Retry-After (the seconds    |                                                |
//	left in the minute) and uses none            |                                                |
//	GET /tickets/{id}?include=conversations      | View a Ticket (#view_a_ticket): "Including     | not switchable (it is the API's price);
//	costs two credits (up to ten conversations,  | conversations will consume two API calls"      | WithRateLimit(0) removes the limit
//	oldest first); include=requester costs one   |                                                |
//	notes: body is a String (missing_field /     | Add Note to a Ticket (#add_note_to_a_ticket):  | not switchable; AddAgent and ticket
//	datatype_mismatch); private and incoming are | body String required, private and incoming     | requesters make user_ids valid
//	Booleans, user_id a positive Integer naming  | Boolean, user_id Number, notify_emails Array   |
//	a known user (the API key's agent, AddAgent, | of Strings (e-mail addresses); Error codes     |
//	a ticket's requester: else invalid_value),   | (#error): datatype_mismatch, invalid_value,    |
//	notify_emails an Array of e-mail Strings;    | invalid_field, missing_field                   |
//	multipart forms take "true"/"false" and      |                                                |
//	notify_emails[]; other fields invalid_field; |                                                |
//	notified_to echoes notify_emails             |                                                |
//	custom fields are typed: custom_text (String,| Ticket Fields (#ticket_fields) field types;    | AddTicketField declares a field's type;
//	at most 255 characters), custom_paragraph    | Update a Ticket (#update_ticket) custom_fields;| without one, the type follows the value
//	(String), custom_checkbox (Boolean),         | Error codes (#error)                           | AddTicket was given (nil means
//	custom_number (Integer), custom_decimal      |                                                | custom_text); null clears any field
//	(Number), custom_date ("yyyy-mm-dd"),        |                                                |
//	custom_dropdown (one of its choices); a      |                                                |
//	wrong type is datatype_mismatch, a bad value |                                                |
//	invalid_value, and nothing is changed        |                                                |
//
// Sources: the reference sections as quoted in
// internal/fixtures/freshdesk/README.md, and Freshdesk's support article
// "What are the rate limits for the API calls to Freshdesk?" (225439:
// per-minute limits by plan, Enterprise 700). Choices the reference leaves
// open, not confirmed on a live help desk: the minute starts with the first
// call after the previous minute ended; a call needing two credits with one
// left is refused; an unknown user_id is invalid_value; the 255-character
// limit of custom_text.
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
// Failures: RateLimitNext (429 with Retry-After, whatever the credits say),
// FailNext (any status),
// FailWhen (a predicate), SetLatency. Requests returns every request
// received, with the status answered.
//
// # Testing
//
// freshdesktest is itself a test package: import it from _test.go files,
// examples and the tour. NewServer(t) registers Close with t.Cleanup. Its own
// tests check its answers against the fixtures in internal/fixtures.
package freshdesktest
