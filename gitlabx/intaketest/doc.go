// Package intaketest checks an implementation of gitlabx.Intake against the
// contract gitlabx.Hooks relies on, for users who store webhook deliveries
// in their own queue. gitlabx's in-memory intake and gitlabx/jetstream pass
// it.
//
//	// In a test of yours (t is its *testing.T):
//	intaketest.TestIntake(t, func(t *testing.T) gitlabx.Intake {
//		// Build your Intake here; this one is gitlabx/jetstream's.
//		emb, err := jetstream.StartEmbedded(jetstream.EmbeddedConfig{DataDir: t.TempDir()})
//		if err != nil {
//			t.Fatal(err)
//		}
//		t.Cleanup(emb.Close)
//		in, err := jetstream.New(t.Context(), jetstream.Config{Conn: emb.Conn()})
//		if err != nil {
//			t.Fatal(err)
//		}
//		return in
//	})
//
// # Testing
//
// This package is itself the test helper; it has no fake.
package intaketest
