package workflow

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opskit/opskit/internal/atomicfile"
)

// Record is one line of a journal: an Event as JSON.
type Record struct {
	Time    time.Time `json:"time"`
	Kind    EventKind `json:"kind"`
	Phase   Phase     `json:"phase,omitempty"`
	Target  string    `json:"target,omitempty"`
	State   string    `json:"state,omitempty"`
	Error   string    `json:"error,omitempty"`
	Rollout string    `json:"rollout,omitempty"`
	Plan    string    `json:"plan,omitempty"`
}

func recordOf(ev Event) Record {
	r := Record{Time: ev.Time, Kind: ev.Kind, Phase: ev.Phase, Target: ev.Target, State: ev.State, Rollout: ev.Rollout, Plan: ev.Plan}
	if ev.Err != nil {
		r.Error = ev.Err.Error()
	}
	return r
}

// JournalError reports a journal line that is not a record. Only a torn
// last line (one without its newline, as a crash leaves it) is tolerated.
type JournalError struct {
	Line int
	Err  error
}

// Error names the line and what is wrong with it.
func (e *JournalError) Error() string {
	return fmt.Sprintf("workflow: journal line %d: %v", e.Line, e.Err)
}

// Unwrap returns the decoding error.
func (e *JournalError) Unwrap() error { return e.Err }

// ReadJournal decodes a journal. A last line without its newline is a
// write torn by a crash and is dropped, even when it decodes: Append had
// not returned, so the work it announced never went on. Any other line
// that does not decode is a *JournalError.
func ReadJournal(r io.Reader) ([]Record, error) {
	var recs []Record
	_, err := decodeJournal(r, func(rec Record) { recs = append(recs, rec) })
	return recs, err
}

// decodeJournal calls fn for each record on a whole line and returns the
// length of that prefix. A torn tail is neither passed to fn nor counted,
// so what OpenJournal applies is exactly what it keeps in the file.
func decodeJournal(r io.Reader, fn func(Record)) (good int64, err error) {
	br := bufio.NewReader(r)
	for line := 1; ; line++ {
		b, rerr := br.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return good, fmt.Errorf("workflow: reading journal: %w", rerr)
		}
		complete := rerr == nil
		if len(b) == 0 {
			return good, nil
		}
		body := bytes.TrimSpace(b)
		if len(body) == 0 {
			// A blank line carries nothing.
			if complete {
				good += int64(len(b))
				continue
			}
			return good, nil
		}
		if !complete {
			return good, nil // torn by a crash, whether or not it decodes
		}
		rec, derr := decodeRecord(body)
		if derr != nil {
			return good, &JournalError{Line: line, Err: derr}
		}
		fn(rec)
		good += int64(len(b))
	}
}

func decodeRecord(b []byte) (Record, error) {
	var rec Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return Record{}, err
	}
	if dec.More() {
		return Record{}, errors.New("trailing data after record")
	}
	if rec.Kind == "" {
		return Record{}, errors.New("record has no kind")
	}
	return rec, nil
}

// TargetStatus is what a journal says about one target.
type TargetStatus struct {
	// Status is "running" (started, no outcome: the controller stopped
	// or crashed), "succeeded", "failed" or "interrupted".
	Status string
	// State is where Resume restarts the target: the last state it
	// entered ("" means from the start).
	State string
	// Err is the last failure's message.
	Err string
}

// The values of TargetStatus.Status.
const (
	StatusRunning     = "running"
	StatusSucceeded   = "succeeded"
	StatusFailed      = "failed"
	StatusInterrupted = "interrupted"
)

func (s *TargetStatus) apply(rec Record) {
	switch rec.Kind {
	case EventStart:
		s.Status = StatusRunning
	case EventState:
		s.Status, s.State = StatusRunning, rec.State
	case EventDone:
		s.Status, s.State, s.Err = StatusSucceeded, "", ""
	case EventFail:
		s.Status, s.Err = StatusFailed, rec.Error
	case EventInterrupted:
		s.Status = StatusInterrupted
	}
}

// Epoch is the header of one rollout in a journal. Each Runner.Run starts
// a new epoch with an EventBegin record; Resume and RetryFailed read only
// the latest one, so a target's record from an earlier rollout never makes
// it look done in a later one.
type Epoch struct {
	// Rollout is the rollout's ID: Runner.RolloutID, or a random ID.
	Rollout string
	// Plan is the PlanDigest of the targets the rollout ran, or was last
	// resumed with (an EventResume record with AllowPlanChange updates it).
	// It is "" for records written before epochs existed.
	Plan string
	// Time is when the epoch began.
	Time time.Time
}

// Journal is an append-only, fsync'd JSON-lines file of a rollout's events.
// Set it as Runner.Journal; after a crash, open the same file again and call
// Runner.Resume. The caller must call Close when finished.
type Journal struct {
	mu     sync.Mutex
	f      *os.File
	status map[string]*TargetStatus // of the latest epoch
	epoch  *Epoch                   // the latest epoch; nil if none began
	legacy bool                     // target records outside any epoch
	err    error
}

// ErrJournalLocked is returned by OpenJournal when another open Journal
// (in this or another process) holds the file.
var ErrJournalLocked = errors.New("workflow: journal in use by another rollout")

// OpenJournal opens the journal at path, creating it if needed, locks it
// against other controllers (ErrJournalLocked), and reads what it already
// holds. A line torn by a crash at the end of the file is
// cut off so that new records start on a line of their own. A corrupt line
// elsewhere is a *JournalError.
func OpenJournal(path string) (*Journal, error) {
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("workflow: opening journal: %w", err)
	}
	if err := lockJournal(f); err != nil {
		f.Close()
		if errors.Is(err, ErrJournalLocked) {
			return nil, fmt.Errorf("%w: %s", ErrJournalLocked, path)
		}
		return nil, fmt.Errorf("workflow: locking journal: %w", err)
	}
	j := &Journal{f: f, status: map[string]*TargetStatus{}}
	good, err := decodeJournal(f, j.apply)
	if err != nil {
		f.Close()
		return nil, err
	}
	if st, err := f.Stat(); err == nil && st.Size() > good {
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, fmt.Errorf("workflow: cutting torn journal line: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("workflow: syncing journal: %w", err)
		}
	}
	if created {
		if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, fmt.Errorf("workflow: syncing journal directory: %w", err)
		}
	}
	return j, nil
}

func (j *Journal) apply(rec Record) {
	switch rec.Kind {
	case EventBegin:
		// A new rollout: what earlier ones did no longer counts.
		j.status = map[string]*TargetStatus{}
		j.epoch = &Epoch{Rollout: rec.Rollout, Plan: rec.Plan, Time: rec.Time}
		j.legacy = false
		return
	case EventResume:
		if j.epoch == nil { // adopting records written before epochs
			j.epoch = &Epoch{Rollout: rec.Rollout, Time: rec.Time}
			j.legacy = false
		}
		j.epoch.Plan = rec.Plan
		return
	}
	if rec.Target == "" {
		return
	}
	if j.epoch == nil {
		j.legacy = true
	}
	s := j.status[rec.Target]
	if s == nil {
		s = &TargetStatus{}
		j.status[rec.Target] = s
	}
	s.apply(rec)
}

// Epoch returns the header of the latest rollout in the journal, and false
// when no rollout began in it (a new journal, or one written before
// epochs existed).
func (j *Journal) Epoch() (Epoch, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.epoch == nil {
		return Epoch{}, false
	}
	return *j.epoch, true
}

// state returns the latest epoch (nil if none) and whether records exist
// outside any epoch.
func (j *Journal) state() (*Epoch, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.epoch == nil {
		return nil, j.legacy
	}
	e := *j.epoch
	return &e, false
}

// Status returns what the journal's latest rollout (epoch) says about
// target, and false when it holds nothing about it.
func (j *Journal) Status(target string) (TargetStatus, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	s, ok := j.status[target]
	if !ok {
		return TargetStatus{}, false
	}
	return *s, true
}

// Append writes rec as one line and fsyncs the file before returning.
func (j *Journal) Append(rec Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("workflow: encoding journal record: %w", err)
	}
	b = append(b, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	if _, err := j.f.Write(b); err != nil {
		j.err = fmt.Errorf("workflow: writing journal: %w", err)
		return j.err
	}
	if err := j.f.Sync(); err != nil {
		j.err = fmt.Errorf("workflow: syncing journal: %w", err)
		return j.err
	}
	j.apply(rec)
	return nil
}

// Close closes the file.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err == nil {
		j.err = errors.New("workflow: journal closed")
	}
	return j.f.Close()
}
