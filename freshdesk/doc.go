// Package freshdesk is a Freshdesk API v2 client and a bridge that escalates
// Freshdesk tickets to GitLab issues, without ever duplicating an issue, a
// note or an attachment.
//
// Support presses "Escalate to GitLab" on a ticket (see
// examples/freshdesk-bridge and its userscript); Bridge.Handler receives the
// call and Bridge.Escalate copies the ticket: a GitLab issue with the
// description as inert Markdown, one note per conversation (private notes as
// internal notes), attachments streamed into GitLab uploads, and one private
// link-back note on the ticket. Pressing the button again brings the issue up
// to date and adds only what is new.
//
// The shortest useful program:
//
//	fd, err := freshdesk.New(freshdesk.Config{
//		BaseURL: "https://acme.freshdesk.com/api/v2",
//		APIKey:  freshdesk.Secret(os.Getenv("FRESHDESK_API_KEY")),
//	})
//	if err != nil {
//		return err
//	}
//	gl, err := gitlab.NewClient(os.Getenv("GITLAB_TOKEN"), gitlab.WithBaseURL("https://gitlab.example.com"))
//	if err != nil {
//		return err
//	}
//	b, err := freshdesk.NewBridge(freshdesk.BridgeConfig{
//		Freshdesk: fd, GitLab: gl, Project: "acme/exporter",
//		FreshdeskURL: "https://acme.freshdesk.com",
//	})
//	if err != nil {
//		return err
//	}
//	esc, err := b.Escalate(ctx, 4711)
//	fmt.Println(esc.IssueURL, esc.NotesAdded)
//
// Config.APIKey and BridgeConfig.Token are a [Secret], which is an alias of
// opskit.Secret, the SDK's one secret type: it never prints, and
// freshdesk.Secret(s) and opskit.Secret(s) are interchangeable. Migration:
// Secret used to alias a type from an internal package; code that converts
// with freshdesk.Secret(s) keeps compiling unchanged.
//
// # Idempotency
//
// The description starts with the hidden line
// <!-- opskit:freshdesk-ticket=N --> and every copied conversation's note
// with <!-- opskit:freshdesk-conversation=N -->. Escalate finds the issue by
// the optional custom field, or else by that marker, and skips conversations
// whose marker is already on a note. Markers count only in issues and notes
// that the bridge's own GitLab user wrote (learned once from GET /user):
// anyone in the project can paste a marker, and a planted one is ignored
// (the bridge creates its own issue and copies the conversation anyway).
// GitLab writes are not retried after a 5xx or a
// broken connection (only after a 429), so a write that may have happened is
// settled by the next run, which looks before it writes. Escalations of one
// ticket are serialized within a Bridge, and across replicas with a shared
// Intake (below).
//
// # Queued escalations
//
// By default Handler runs an escalation while the browser waits (200 with
// the result). With BridgeConfig.Intake it queues it instead: POST
// /escalate/{ticketID} answers 202 {"status":"queued","id":...} once the
// intake has stored the escalation, a replica started with Start runs it,
// and GET /escalations/{id} answers its EscalationStatus ("queued", then
// "done" or "failed" with the Escalation's fields), which the userscript
// polls. The intake is a gitlabx.Intake, reused as is: an escalation is an
// Envelope with Event EscalationEvent, the job as Body and the partition
// "freshdesk-ticket/<id>", so one ticket's escalations run one at a time,
// in order. With gitlabx/jetstream's Intake on a stream of its own, an
// accepted escalation survives a crash (it runs again after the restart, or
// on another replica; Escalate is idempotent) and any number of replicas
// share the work; results go to a ResultStore every replica shares
// (jetstream.Results, a key-value bucket with a TTL; nil keeps them in a
// bounded MemoryResults, for one replica):
//
//	emb, err := jetstream.StartEmbedded(jetstream.EmbeddedConfig{DataDir: "/var/lib/freshdesk-bridge"})
//	if err != nil {
//		return err
//	}
//	defer emb.Close()
//	intake, err := jetstream.New(ctx, jetstream.Config{Conn: emb.Conn(),
//		Stream: "FRESHDESK_ESCALATIONS", Subject: "freshdesk.escalations"})
//	if err != nil {
//		return err
//	}
//	results, err := jetstream.NewResults(ctx, jetstream.ResultsConfig{Conn: emb.Conn(), Bucket: "FRESHDESK_ESCALATION_RESULTS"})
//	if err != nil {
//		return err
//	}
//	fd, err := freshdesk.New(freshdesk.Config{BaseURL: "https://acme.freshdesk.com/api/v2", APIKey: apiKey})
//	if err != nil {
//		return err
//	}
//	gl, err := gitlab.NewClient(token, gitlab.WithBaseURL("https://gitlab.example.com"))
//	if err != nil {
//		return err
//	}
//	b, err := freshdesk.NewBridge(freshdesk.BridgeConfig{Freshdesk: fd, GitLab: gl, Project: "acme/exporter",
//		FreshdeskURL: "https://acme.freshdesk.com", Token: freshdesk.Secret(os.Getenv("BRIDGE_TOKEN")),
//		Intake: intake, Results: results})
//	if err != nil {
//		return err
//	}
//	if err := b.Start(); err != nil { // runs what was stored before a restart
//		return err
//	}
//	defer b.Shutdown(context.Background()) // before emb.Close
//	return http.ListenAndServe("127.0.0.1:8080", b.Handler())
//
// examples/freshdesk-bridge runs this by default (-data-dir), or joins a
// NATS cluster for several replicas (-nats-url).
//
// # Status sync back
//
// Bridge.Register puts the bridge on a gitlabx.Hooks receiver for issue and
// comment events, so the ticket hears when its issue moves (SyncConfig):
//
//   - closed: a private note, or with CloseReply a public reply to the
//     requester, from an html/template (CloseTemplate), and the optional
//     CloseStatus (e.g. StatusResolved);
//   - reopened: a private note (ReopenTemplate) and the status back to
//     ReopenStatus (StatusOpen by default);
//   - a comment whose text starts with NotePrefix ("/customer" by default)
//     is copied, without the prefix, as a private note; internal comments
//     and comments without the prefix stay in GitLab.
//
// Only issues the bridge escalated count: the ticket marker must be in an
// issue the bridge's own user wrote, or the ticket's custom field must name
// the issue; a planted marker syncs nothing. Nothing loops: comments by the
// bridge's own GitLab user are never copied to the ticket, and the bridge's
// notes and replies on the ticket are never copied to GitLab. Every action
// leaves a reference (SyncRefPrefix) on the ticket and looks for it first,
// so a redelivered event, after a restart too, changes nothing.
//
// # Metrics and traces
//
// NewMetrics registers the bridge's counters on a registry of yours
// (BridgeConfig.Metrics): escalations by result, notes and attachments
// copied, attachments linked instead, escalation duration, and sync actions
// by kind and result. BridgeConfig.TracerProvider opens a span per
// escalation and per GitLab event handled. The API calls are measured where
// they leave: wrap both clients' HTTP transports with observe.NewTransport
// (Freshdesk's with Endpoint, so attachment URLs stay one series), which
// counts calls, 429s and the waits they asked for, and makes each call a
// child span of the escalation:
//
//	reg := prometheus.NewRegistry()
//	fdm, _ := observe.NewClientMetrics(reg, "freshdesk")
//	fd, err := freshdesk.New(freshdesk.Config{BaseURL: "https://acme.freshdesk.com", APIKey: apiKey,
//		HTTPClient: &http.Client{Transport: observe.NewTransport(nil, observe.TransportConfig{
//			Metrics: fdm, TracerProvider: tp, Endpoint: freshdesk.Endpoint})}})
//	glm, _ := observe.NewClientMetrics(reg, "gitlab")
//	gl, err := gitlab.NewClient(token, gitlab.WithBaseURL(url), gitlab.WithHTTPClient(&http.Client{
//		Transport: observe.NewTransport(nil, observe.TransportConfig{Metrics: glm, TracerProvider: tp})}))
//	m, err := freshdesk.NewMetrics(reg)
//	b, err := freshdesk.NewBridge(freshdesk.BridgeConfig{Freshdesk: fd, GitLab: gl, Project: 7, Metrics: m, TracerProvider: tp})
//
// # Testing
//
// The package freshdesk/freshdesktest is an in-memory Freshdesk API v2
// (tickets, paginated conversations with Link headers, attachments at
// expiring URLs, notes, custom fields, failure and latency injection);
// gitlabx/gitlabtest is its GitLab counterpart. Both are used by this
// package's tests and by the tour.
package freshdesk
