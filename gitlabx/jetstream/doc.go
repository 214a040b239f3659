// Package jetstream is a durable gitlabx.Intake on NATS JetStream: webhook
// deliveries survive crashes and restarts, and any number of replicas of a
// service share them, with the deliveries of one merge request or issue
// still handled one at a time, in order.
//
// gitlabx.Hooks answers GitLab 202 only after JetStream acknowledged the
// delivery (PubAck). Each delivery is published with Nats-Msg-Id set to its
// dedupe key (the signed webhook-id when signing is configured, else
// Idempotency-Key, else X-Gitlab-Event-UUID, hashed to 64 bytes), so a
// redelivery within Config.DedupWindow is answered 200 and not stored
// again, whichever replica receives it. Subjects are partitioned by the
// serialization key (project and MR iid, project and issue iid); each
// partition is a durable pull consumer with one delivery in flight
// (MaxAckPending 1), pinned to one replica at a time (priority policy
// "pinned", nats-server 2.11 or newer: Debian's 2.9 silently ignores it). A
// delivery is acknowledged after its handlers returned. A replica that
// crashes mid-delivery loses nothing: after Config.PinnedTTL another replica
// takes the partition over and JetStream hands it the unacknowledged
// delivery again (after Config.AckWait), so handlers must be idempotent, as
// gitlabx's bots are. Shutdown hands back what it cannot finish.
//
// With no NATS cluster, StartEmbedded runs a JetStream server inside the
// process with file storage: one replica, durable, no setup.
//
//	emb, err := jetstream.StartEmbedded(jetstream.EmbeddedConfig{DataDir: "/var/lib/gitlab-hooks"})
//	if err != nil {
//		return err
//	}
//	defer emb.Close()
//	intake, err := jetstream.New(ctx, jetstream.Config{Conn: emb.Conn()})
//	if err != nil {
//		return err
//	}
//	hooks, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: gitlabx.Secret(hookSecret), Intake: intake})
//	if err != nil {
//		return err
//	}
//	defer hooks.Shutdown(context.Background()) // before emb.Close
//	check, err := gitlabx.NewVersionCheck(client, gitlabx.VersionCheckConfig{})
//	if err != nil {
//		return err
//	}
//	check.Register(hooks)
//	hooks.Start() // after registering: runs what was stored before a restart
//	return http.ListenAndServe(":8080", hooks)
//
// For several replicas, connect every replica to one NATS cluster with
// nats.Connect and use the same Config (Replicas: 3 for a three-node
// cluster). examples/gitlab-hooks does both (-data-dir, -nats-url).
//
// # Testing
//
// Tests run an embedded server per test (server.NewServer with Port -1,
// JetStream true and StoreDir t.TempDir()), or StartEmbedded, and use
// gitlabx.Hooks.Idle to wait until every stored delivery has been handled.
package jetstream
