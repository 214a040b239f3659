package gitlabx_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

// TestHardening02VersionNoteMarkerPlanted: a note carrying the version
// check's marker that another user wrote is neither adopted (left as "the"
// note, so no warning appears) nor edited; the check writes its own.
func TestHardening02VersionNoteMarkerPlanted(t *testing.T) {
	srv, mr := fakeRepo(t, "1.3.0")
	dev := srv.ClientFor(gitlabtest.DeveloperToken)
	planted := "<!-- opskit:version-check=version -->\n:white_check_mark: **Versions match**"
	pn, _, err := dev.Notes.CreateMergeRequestNote(proj, mr.IID, &gitlab.CreateMergeRequestNoteOptions{Body: gitlab.Ptr(planted)})
	require.NoError(t, err)

	v := newCheck(t, srv, gitlabx.VersionCheckConfig{})
	res, err := v.Check(t.Context(), mrRef(mr))
	require.NoError(t, err)
	assert.Equal(t, gitlabx.NoteCreated, res.Note, "the planted note is not the check's")
	assert.NotEqual(t, pn.ID, res.NoteID)

	notes := versionNotes(srv, mr.IID)
	require.Len(t, notes, 2)
	for _, n := range notes {
		if n.ID == pn.ID {
			assert.Equal(t, planted, n.Body, "the planted note is not edited")
			continue
		}
		assert.Equal(t, srv.BotUser().ID, n.AuthorID)
		assert.Contains(t, n.Body, "Version mismatch")
	}

	// A second run finds the check's own note, not the planted one.
	res, err = v.Check(t.Context(), mrRef(mr))
	require.NoError(t, err)
	assert.Equal(t, gitlabx.NoteUnchanged, res.Note)
	assert.Len(t, versionNotes(srv, mr.IID), 2)
}
