package policy

import (
	"fmt"
	"io"
	"os"
	"text/template"
	"time"
)

// MaxFileSize caps the size of a policy file. Real files are a few KiB; the
// cap keeps a mistaken path (a disk image, /dev/zero) from being read whole.
const MaxFileSize = 1 << 20

// MinInterval is the shortest reconcile interval a policy may ask for: each
// run costs DescribeImages calls in every region of the policy, and ECS
// flow control is per account.
const MinInterval = time.Minute

// Defaults applied when a key is absent.
const (
	DefaultInterval           = 10 * time.Minute
	DefaultDataDir            = ".replicatord"
	DefaultCopySlotsPerRegion = 5
	DefaultLookahead          = 30
	DefaultLookaheadTime      = 15 * time.Minute
	DefaultDetectionLag       = 15 * time.Minute
	DefaultMaxAttempts        = 5
	DefaultMaxRetries         = 10
	DefaultAPIRatePerSecond   = 13
	DefaultPollMin            = 2 * time.Second
	DefaultPollMax            = 45 * time.Minute
	DefaultCopyName           = "{{.SourceName}}"
	DefaultJobRetention       = 30 * 24 * time.Hour
	DefaultRetryBase          = time.Second
	DefaultQuotaWait          = time.Minute
	DefaultCallTimeout        = 30 * time.Second
)

// Bounds of the duration keys below.
const (
	MinJobRetention = time.Hour
	MaxRetryBase    = 2 * time.Minute // the retry backoff's cap
	MaxQuotaWait    = time.Hour
	MinCallTimeout  = time.Second
	MaxCallTimeout  = 10 * time.Minute
)

// File is a parsed and statically valid policy file.
type File struct {
	Version   int
	Daemon    Daemon
	Cloud     Cloud
	Scheduler Scheduler
	Store     Store
	Policies  []Policy
	// Path is the file the policies were read from ("" for Parse without a path).
	Path string
}

// Daemon holds the daemon's own settings. Command-line flags override them.
type Daemon struct {
	// DataDir holds state.db and the unix socket. A relative data_dir in the
	// file is relative to the file's directory (not to the working
	// directory), so that a file means the same wherever the daemon starts;
	// Parse resolves it when it knows the file's path.
	DataDir string
	// Listen is "" for the unix socket <DataDir>/replicatord.sock,
	// "unix:PATH" for another socket, or host:port for TCP.
	Listen        string
	MetricsListen string
	LogFormat     string // text | json
	LogLevel      string // debug | info | warn | error
	// Owner names this installation; it is written on every copy as the
	// tag replicatord:owner, and only copies with it are adopted, looked
	// up or pruned (job.DefaultOwner when absent).
	Owner string
	// JobRetention is how long a finished job is kept after its last
	// change before it is removed from the state file; 0 keeps it forever.
	JobRetention time.Duration
}

// Cloud says which cloud the daemon talks to. Credentials are never here:
// they come from the environment, ~/.aliyun/config.json or a RAM role.
type Cloud struct {
	Provider string // simulated | aliyun
	// The rest is for aliyun only.
	Endpoint  string            // one ECS endpoint for every region (host[:port] is HTTPS)
	Endpoints map[string]string // per-region endpoint overrides
	Network   string            // public | vpc: which of ECS's endpoints
	Region    string            // the region asked for the region list ("" = cn-hangzhou)
	// ConnectTimeout, ReadTimeout and MaxConcurrency tune the SDK client
	// pool; zero means the adapter's default (5s, 15s, 8).
	ConnectTimeout time.Duration
	ReadTimeout    time.Duration
	MaxConcurrency int
	Simulated      Simulated
}

// Networks of cloud.network.
const (
	NetworkPublic = "public"
	NetworkVPC    = "vpc"
)

// Providers.
const (
	ProviderSimulated = "simulated"
	ProviderAliyun    = "aliyun"
)

// Simulated holds the knobs of the in-process ECS emulator.
type Simulated struct {
	TimeScale       float64
	CopyRateMiBps   float64
	StartupDelay    time.Duration
	Seed            int64
	MaxImageSizeGiB int64
	ComplianceRule  string   // "" | mainland-only
	DeniedRoutes    []string // "src>dst" pairs the compliance check refuses
}

// Scheduler holds the copy scheduler's knobs.
type Scheduler struct {
	CopySlotsPerRegion int
	RegionSlots        map[string]int
	Lookahead          int
	MaxAttempts        int
	APIRatePerSecond   float64
	PollMin            time.Duration
	PollMax            time.Duration
	// LookaheadTime bounds how long a submitted copy is expected to wait
	// at ECS for a slot; DetectionLag how long after a copy's expected end
	// the poll that sees it may come (scheduler.Options).
	LookaheadTime time.Duration
	DetectionLag  time.Duration
	CopyConflict  bool
	// MaxRetries bounds transient failures of one step of a job before it
	// fails (cancels are never bounded: they go on until the copy is gone).
	MaxRetries int
	// RetryBase is the first wait of a job's exponential backoff after a
	// transient failure; QuotaWait the wait after ECS's image quota is
	// full; CallTimeout bounds one ECS call.
	RetryBase   time.Duration
	QuotaWait   time.Duration
	CallTimeout time.Duration
}

// Policy is one replication policy: which source images must exist in
// which destination regions, and how the copies look.
type Policy struct {
	Name         string
	Source       Source
	Destinations []Destination
	Copy         Copy
	Retention    Retention
	// MaxSizeGiB: larger sources are Blocked instead of attempted; 0 = no limit.
	MaxSizeGiB int64
	Priority   int32
	Interval   time.Duration
	Enabled    bool

	c *compiled // templates and positions; nil for a Policy built by hand
}

// Source says where the images come from and which ones.
type Source struct {
	Region string
	Images Selector
	// Exclude drops images matching ANY of its criteria (an id in IDs, the
	// name glob, all of Tags). Newest is not allowed in Exclude.
	Exclude Selector
}

// Selector chooses images. Every criterion given must match; Newest then
// keeps the N most recently created matches (0 = all).
type Selector struct {
	IDs    []string
	Name   string // path.Match glob on the image name
	Tags   map[string]string
	Newest int
}

func (s Selector) empty() bool { return len(s.IDs) == 0 && s.Name == "" && len(s.Tags) == 0 }

// Destination is one region the images must exist in.
type Destination struct {
	Region    string
	Encrypted bool
	KMSKeyID  string
}

// Copy says how copies are named, tagged and finished.
type Copy struct {
	Name           string // text/template; DefaultCopyName when absent
	Description    string // text/template; "" = none
	Tags           map[string]string
	CopySourceTags bool
	// ImageFamily: "" = none, "inherit" = the source's family (ECS copies do
	// not inherit it), otherwise a family name.
	ImageFamily       string
	ShareWithAccounts []string
}

// FamilyInherit is the ImageFamily value that copies the source's family.
const FamilyInherit = "inherit"

// Retention limits the copies a policy keeps per destination.
type Retention struct {
	KeepLast int // 0 = keep everything (retention is opt-in)
	// PerFamily applies KeepLast to each image family on its own (the
	// source's family; sources without one form one group), so that one
	// policy can keep the 3 newest builds of every golden image line.
	PerFamily bool
	// PruneAdopted lets retention delete adopted copies: copies found by
	// their tags that no job of this installation's store knew, so not
	// proven to be ours (false: they are kept and shown, never deleted).
	PruneAdopted bool
}

// compiled is what Parse derives from a policy: parsed templates and the
// positions ValidateEnv needs to point at.
type compiled struct {
	name, desc *template.Template
	at         pos   // the policy's mapping
	srcRegion  pos   // source.region's value
	dstRegion  []pos // destinations[i].region's value
	definition string
}

type pos struct{ line, col int }

// Load reads the file at path and parses it.
func Load(path string) (*File, error) {
	f, err := LoadLenient(path)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// LoadLenient is Load that also returns what it decoded when the file has
// problems, so that the caller can check the rest against the cloud
// (ValidateEnv) and report every problem at once (MergeErrors). A File
// returned with an error is for that check only. The File is nil when the
// file could not be read or decoded at all.
func LoadLenient(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &ValidationErrors{Errors: []ValidationError{{File: path, Message: fmt.Sprintf("cannot read the policy file: %v", unwrapPathError(err))}}}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &ValidationErrors{Errors: []ValidationError{{File: path, Message: fmt.Sprintf("cannot read the policy file: %v", unwrapPathError(err))}}}
	}
	return parseLenient(path, data)
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// Definition returns the policy as written in the file, re-encoded as YAML.
// It never holds secrets: a file with secrets does not load.
func (p *Policy) Definition() string {
	if p.c == nil {
		return ""
	}
	return p.c.definition
}

// Policy returns the policy with that name, or nil.
func (f *File) Policy(name string) *Policy {
	for i := range f.Policies {
		if f.Policies[i].Name == name {
			return &f.Policies[i]
		}
	}
	return nil
}

// Destination returns the policy's destination in region, or false.
func (p *Policy) Destination(region string) (Destination, bool) {
	for _, d := range p.Destinations {
		if d.Region == region {
			return d, true
		}
	}
	return Destination{}, false
}
