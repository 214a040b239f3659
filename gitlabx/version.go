package gitlabx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"

	gitlab "gitlab.com/gitlab-org/api/client-go"
)

// ErrVersionNotFound means a VersionSource found no version: the file is
// missing (or the branch was deleted), or it holds no version.
var ErrVersionNotFound = errors.New("gitlabx: version not found")

// FileReader reads a file at a ref (branch, tag or commit) of one project.
// When the file or the ref does not exist, the error wraps ErrVersionNotFound.
type FileReader interface {
	ReadFile(ctx context.Context, ref, path string) ([]byte, error)
}

// VersionSource reads the version that a ref carries.
// Implementations return an error wrapping ErrVersionNotFound when there is none.
type VersionSource interface {
	Version(ctx context.Context, files FileReader, ref string) (string, error)
	// String names the source in notes, e.g. "`VERSION`".
	String() string
}

// VersionFile returns a source that reads a whole file holding only the
// version, such as VERSION ("" means "VERSION"). Surrounding space and a
// leading "v" are kept as written, except for the final newline.
func VersionFile(path string) VersionSource {
	if path == "" {
		path = "VERSION"
	}
	return fileSource{path: path}
}

type fileSource struct{ path string }

func (s fileSource) String() string { return "`" + s.path + "`" }

func (s fileSource) Version(ctx context.Context, files FileReader, ref string) (string, error) {
	b, err := files.ReadFile(ctx, ref, s.path)
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%w: %s is empty", ErrVersionNotFound, s.path)
	}
	return v, nil
}

// VersionRegexp returns a source that matches re against the file at path
// and takes its first capture group, e.g.
// regexp.MustCompile(`const Version = "([^"]+)"`) over version.go.
func VersionRegexp(path string, re *regexp.Regexp) VersionSource {
	return regexpSource{path: path, re: re}
}

type regexpSource struct {
	path string
	re   *regexp.Regexp
}

func (s regexpSource) String() string { return "`" + s.path + "`" }

func (s regexpSource) Version(ctx context.Context, files FileReader, ref string) (string, error) {
	b, err := files.ReadFile(ctx, ref, s.path)
	if err != nil {
		return "", err
	}
	m := s.re.FindSubmatch(b)
	if len(m) < 2 || len(m[1]) == 0 {
		return "", fmt.Errorf("%w: %s does not match %s", ErrVersionNotFound, s.path, s.re)
	}
	return string(m[1]), nil
}

// PackageJSON returns a source that reads the "version" field of a
// package.json ("" means "package.json").
func PackageJSON(path string) VersionSource {
	if path == "" {
		path = "package.json"
	}
	return packageSource{path: path}
}

type packageSource struct{ path string }

func (s packageSource) String() string { return "`" + s.path + "`" }

func (s packageSource) Version(ctx context.Context, files FileReader, ref string) (string, error) {
	b, err := files.ReadFile(ctx, ref, s.path)
	if err != nil {
		return "", err
	}
	var p struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return "", fmt.Errorf("%w: %s is not valid JSON: %v", ErrVersionNotFound, s.path, err)
	}
	if p.Version == "" {
		return "", fmt.Errorf("%w: %s has no \"version\"", ErrVersionNotFound, s.path)
	}
	return p.Version, nil
}

// Versions is what a VersionPolicy compares.
type Versions struct {
	SourceBranch, TargetBranch string
	Source, Target             string // the versions read on each branch
	From                       string // the source's description, e.g. "`VERSION`"
}

// Verdict is a VersionPolicy's answer. Message is Markdown for the note.
type Verdict struct {
	Warn    bool
	Message string
}

// VersionPolicy decides whether an MR's versions deserve a warning.
type VersionPolicy func(v Versions) Verdict

// WarnWhenDifferent is the default policy: warn when the source and target
// branches carry different versions.
func WarnWhenDifferent(v Versions) Verdict {
	if v.Source != v.Target {
		return Verdict{Warn: true, Message: fmt.Sprintf(
			":warning: **Version mismatch** in %s: source branch `%s` has `%s`, target branch `%s` has `%s`.",
			v.From, v.SourceBranch, v.Source, v.TargetBranch, v.Target)}
	}
	return Verdict{Message: fmt.Sprintf(
		":white_check_mark: **Versions match** in %s: `%s` and `%s` both have `%s`.",
		v.From, v.SourceBranch, v.TargetBranch, v.Source)}
}

// VersionCheckConfig configures a VersionCheck. The zero value of each field
// selects the documented default.
type VersionCheckConfig struct {
	// Source reads the version on a branch. nil means VersionFile("VERSION").
	Source VersionSource
	// Policy compares the versions. nil means WarnWhenDifferent.
	Policy VersionPolicy
	// Name tells this check's note apart from other checks' notes on the
	// same MR (it is the hidden marker's value). "" means "version".
	Name string
	// Logger receives a record per note written. nil discards.
	Logger *slog.Logger
}

// NoteAction says what a check did to its note.
type NoteAction string

// The NoteActions.
const (
	NoteNone      NoteAction = "none"      // no note exists and none was needed
	NoteCreated   NoteAction = "created"   // the note was written for the first time
	NoteUpdated   NoteAction = "updated"   // the existing note was edited
	NoteUnchanged NoteAction = "unchanged" // the existing note already said this
)

// VersionResult is the outcome of one check.
type VersionResult struct {
	Versions Versions
	Verdict  Verdict
	Note     NoteAction
	NoteID   int64
}

// VersionCheck warns on merge requests whose source and target branches
// carry mismatched versions. It keeps exactly one note per MR, found again by
// a hidden marker and edited in place, so redeliveries, retries and
// concurrent events never add a second one. It looks for the note among the
// MR's own notes (never by a search, which GitLab rate-limits). Only a note
// that the check's own user wrote (learned once from GET /user) counts: a
// note carrying the marker written by someone else, or a system note (which
// GitLab attributes to whoever caused it), is neither edited nor taken as the
// check's.
type VersionCheck struct {
	client *gitlab.Client
	cfg    VersionCheckConfig
	log    *slog.Logger
	locks  keyedMutex

	selfMu sync.Mutex
	selfID int64 // the user of client, learned once from GET /user
}

// NewVersionCheck returns a check that calls GitLab through client.
func NewVersionCheck(client *gitlab.Client, cfg VersionCheckConfig) (*VersionCheck, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil gitlab client", ErrConfig)
	}
	if cfg.Source == nil {
		cfg.Source = VersionFile("")
	}
	if cfg.Policy == nil {
		cfg.Policy = WarnWhenDifferent
	}
	if cfg.Name == "" {
		cfg.Name = "version"
	}
	v := &VersionCheck{client: client, cfg: cfg, log: cfg.Logger}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	return v, nil
}

// Register makes h run the check on merge request events.
func (v *VersionCheck) Register(h *Hooks) { h.OnMergeRequest(v.HandleMergeRequest) }

// HandleMergeRequest runs the check when an MR is opened or reopened, when
// new commits are pushed to it (action "update" with oldrev) and when its
// target branch changes. Other events are ignored and return nil.
func (v *VersionCheck) HandleMergeRequest(ctx context.Context, ev *gitlab.MergeEvent) error {
	a := ev.ObjectAttributes
	switch {
	case a.Action == "open", a.Action == "reopen":
	case a.Action == "update" && (a.OldRev != "" || ev.Changes.TargetBranch.Current != ""):
	default:
		return nil
	}
	if a.State != "" && a.State != "opened" {
		return nil
	}
	src := a.SourceProjectID
	if src == 0 {
		src = a.TargetProjectID
	}
	_, err := v.Check(ctx, MergeRequestRef{
		Project: a.TargetProjectID, IID: a.IID,
		SourceProject: src, SourceBranch: a.SourceBranch, TargetBranch: a.TargetBranch,
	})
	return err
}

// MergeRequestRef names an MR and its branches.
type MergeRequestRef struct {
	Project       int64 // the target project
	IID           int64
	SourceProject int64 // 0 means Project (not a fork)
	SourceBranch  string
	TargetBranch  string
}

// Check reads the versions on both branches, applies the policy and creates,
// edits or leaves the MR's note. A missing version file or a deleted branch
// is reported in the note, not returned as an error. Errors from GitLab are
// returned as client-go reports them (see Transient).
func (v *VersionCheck) Check(ctx context.Context, mr MergeRequestRef) (VersionResult, error) {
	if mr.SourceProject == 0 {
		mr.SourceProject = mr.Project
	}
	defer v.locks.lock(fmt.Sprintf("%d/%d", mr.Project, mr.IID))()
	vs := Versions{SourceBranch: mr.SourceBranch, TargetBranch: mr.TargetBranch, From: v.cfg.Source.String()}
	var res VersionResult
	var missing []string
	var err error
	vs.Source, err = v.cfg.Source.Version(ctx, v.reader(mr.SourceProject), mr.SourceBranch)
	if errors.Is(err, ErrVersionNotFound) {
		missing = append(missing, fmt.Sprintf("source branch `%s`", mr.SourceBranch))
	} else if err != nil {
		return res, err
	}
	vs.Target, err = v.cfg.Source.Version(ctx, v.reader(mr.Project), mr.TargetBranch)
	if errors.Is(err, ErrVersionNotFound) {
		missing = append(missing, fmt.Sprintf("target branch `%s`", mr.TargetBranch))
	} else if err != nil {
		return res, err
	}
	res.Versions = vs
	if len(missing) > 0 {
		res.Verdict = Verdict{Warn: true, Message: fmt.Sprintf(
			":warning: **Version check could not run**: no version in %s on %s (missing file or deleted branch).",
			vs.From, strings.Join(missing, " and "))}
	} else {
		res.Verdict = v.cfg.Policy(vs)
	}
	body := marker("version-check", v.cfg.Name) + "\n" + res.Verdict.Message
	res.Note, res.NoteID, err = v.upsert(ctx, mr, body, res.Verdict.Warn)
	if err == nil && res.Note != NoteNone && res.Note != NoteUnchanged {
		v.log.Info("version note written", "project", mr.Project, "mr", mr.IID, "action", string(res.Note), "warn", res.Verdict.Warn)
	}
	return res, err
}

// upsert edits the MR's marked note to say body, or creates it when create
// is set. The create is sent without client-go's retries: a 5xx after GitLab
// stored the note would otherwise add a second one. The next attempt lists
// the notes first and finds it.
func (v *VersionCheck) upsert(ctx context.Context, mr MergeRequestRef, body string, create bool) (NoteAction, int64, error) {
	existing, err := v.findNote(ctx, mr)
	if err != nil {
		return NoteNone, 0, err
	}
	if existing != nil {
		if strings.TrimSpace(existing.Body) == strings.TrimSpace(body) {
			return NoteUnchanged, existing.ID, nil
		}
		n, _, err := v.client.Notes.UpdateMergeRequestNote(mr.Project, mr.IID, existing.ID,
			&gitlab.UpdateMergeRequestNoteOptions{Body: &body}, RequestOptions(ctx)...)
		if err != nil {
			return NoteNone, existing.ID, fmt.Errorf("gitlabx: editing version note on !%d: %w", mr.IID, err)
		}
		return NoteUpdated, n.ID, nil
	}
	if !create {
		return NoteNone, 0, nil
	}
	opts := append(RequestOptions(ctx), noRetry())
	n, _, err := v.client.Notes.CreateMergeRequestNote(mr.Project, mr.IID,
		&gitlab.CreateMergeRequestNoteOptions{Body: &body}, opts...)
	if err != nil {
		return NoteNone, 0, fmt.Errorf("gitlabx: creating version note on !%d: %w", mr.IID, err)
	}
	return NoteCreated, n.ID, nil
}

// findNote returns the check's note on the MR: a note carrying its marker
// that the check's own user wrote. A note with the marker written by
// someone else (anyone can paste it) is neither edited nor taken as ours.
func (v *VersionCheck) findNote(ctx context.Context, mr MergeRequestRef) (*gitlab.Note, error) {
	self, err := v.self(ctx)
	if err != nil {
		return nil, err
	}
	opt := &gitlab.ListMergeRequestNotesOptions{ListOptions: gitlab.ListOptions{PerPage: 100}}
	for {
		notes, resp, err := v.client.Notes.ListMergeRequestNotes(mr.Project, mr.IID, opt, RequestOptions(ctx)...)
		if err != nil {
			return nil, fmt.Errorf("gitlabx: listing notes of !%d: %w", mr.IID, err)
		}
		for _, n := range notes {
			if n.Author.ID == self && !n.System && hasMarker(n.Body, "version-check", v.cfg.Name) {
				return n, nil
			}
		}
		if resp == nil || resp.NextPage == 0 {
			return nil, nil
		}
		opt.Page = resp.NextPage
	}
}

// self returns the ID of the user the check writes as, asked once from
// GET /user (again after a failure).
func (v *VersionCheck) self(ctx context.Context) (int64, error) {
	v.selfMu.Lock()
	defer v.selfMu.Unlock()
	if v.selfID != 0 {
		return v.selfID, nil
	}
	u, _, err := v.client.Users.CurrentUser(RequestOptions(ctx)...)
	if err != nil {
		return 0, fmt.Errorf("gitlabx: getting the version check's own user: %w", err)
	}
	v.selfID = u.ID
	return u.ID, nil
}

// noRetry turns off client-go's retries for one write that a retry could duplicate.
func noRetry() gitlab.RequestOptionFunc {
	return gitlab.WithRequestRetry(func(ctx context.Context, _ *http.Response, err error) (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, err
	})
}

func (v *VersionCheck) reader(project int64) FileReader {
	return apiFiles{client: v.client, project: project}
}

// apiFiles reads raw files through the repository files API.
type apiFiles struct {
	client  *gitlab.Client
	project int64
}

func (f apiFiles) ReadFile(ctx context.Context, ref, path string) ([]byte, error) {
	b, _, err := f.client.RepositoryFiles.GetRawFile(f.project, path, &gitlab.GetRawFileOptions{Ref: &ref}, RequestOptions(ctx)...)
	if errors.Is(err, gitlab.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s at %s", ErrVersionNotFound, path, ref)
	}
	if err != nil {
		return nil, fmt.Errorf("gitlabx: reading %s at %s: %w", path, ref, err)
	}
	return b, nil
}
