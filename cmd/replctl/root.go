package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	replicatorv1 "github.com/replicatord/replicatord/gen/replicator/v1"
	"github.com/replicatord/replicatord/internal/input"
)

// buildVersion is set with -ldflags "-X main.buildVersion=v1.2.3".
var buildVersion = ""

func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// app is the state one replctl invocation shares between commands.
type app struct {
	*env
	g    globalFlags
	conn *grpc.ClientConn
}

// client dials the daemon once per invocation.
func (a *app) client(ctx context.Context) (replicatorv1.ReplicatorServiceClient, error) {
	if a.conn == nil {
		conn, err := dial(ctx, &a.g)
		if err != nil {
			return nil, err
		}
		a.conn = conn
	}
	return replicatorv1.NewReplicatorServiceClient(a.conn), nil
}

// unary returns the context for one unary call, bounded by --timeout.
func (a *app) unary(ctx context.Context) (context.Context, context.CancelFunc) {
	if a.g.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, a.g.timeout)
}

// run executes replctl with args and returns the process exit code.
func run(ctx context.Context, args []string, e *env) int {
	a := &app{env: e}
	root := newRootCommand(a)
	root.SetArgs(args)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	err := root.ExecuteContext(ctx)
	err = a.explainUnavailable(ctx, err)
	if a.conn != nil {
		a.conn.Close()
	}
	code, msg := exitCode(err, ctx.Err() != nil)
	if msg != "" {
		fmt.Fprintf(e.stderr, "replctl: %s\n", msg)
	}
	if code == exitUsage {
		cmd, _, ferr := root.Find(args)
		if ferr != nil || cmd == nil {
			cmd = root
		}
		fmt.Fprintf(e.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

const rootLong = `replctl controls replicatord, which copies Alibaba Cloud ECS custom images
across regions. It talks to the daemon over gRPC, at --address, else
$REPLCTL_ADDRESS, else the unix socket .replicatord/replicatord.sock under the
current directory if it exists (a daemon started there with its default data
dir), else /run/replicatord/replicatord.sock (the systemd unit's).

Addresses: unix:///abs/path.sock, unix://rel/path.sock, or host:port (TCP, TLS
unless --insecure). A token (--token or REPLCTL_TOKEN) is sent as
"authorization: Bearer ..." and only over TLS or the unix socket.

Output (-o): table (default; in a terminal, copy and watch show a live view,
otherwise one plain line per change), json (protojson, one object per line, for
jq), yaml.

`

func newRootCommand(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "replctl",
		Short:         "Control replicatord: copy ECS images across regions and watch the copies",
		Long:          rootLong + exitCodeHelp(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Example: `  # Copy an image to two regions and watch it in a live view
  replctl copy m-bp1abc --from cn-hangzhou --to cn-shanghai,cn-beijing

  # Watch every job, as JSON lines for jq
  replctl watch -o json | jq -r .job.state

  # List the failed jobs of a policy on a remote daemon
  REPLCTL_ADDRESS=replicatord.internal:7070 replctl --cacert ca.pem jobs --state failed --policy nightly`,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.applyEnv(cmd)
		},
		Version: version(),
	}
	root.SetVersionTemplate("replctl {{.Version}} (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")\n")
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Example: `  # The flags and examples of copy
  replctl help copy`,
		RunE: runE(func(c *cobra.Command, args []string) error {
			cmd, _, err := c.Root().Find(args)
			if err != nil || cmd == nil {
				return usagef("unknown help topic %s", input.Quote(strings.Join(args, " ")))
			}
			return cmd.Help()
		}),
	})
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })

	f := root.PersistentFlags()
	f.StringVar(&a.g.address, "address", "", "daemon address: unix:///abs.sock, unix://rel.sock or host:port (env REPLCTL_ADDRESS; default ./"+localSocket+" if it exists, else "+systemSocket+")")
	f.DurationVar(&a.g.timeout, "timeout", 10*time.Second, "deadline of each unary call, 0 for none (copy and watch streams run until done)")
	f.StringVar(&a.g.cacert, "cacert", "", "CA bundle (PEM) to verify the daemon's TLS certificate; system roots when empty")
	f.StringVar(&a.g.cert, "cert", "", "client certificate (PEM) for mutual TLS")
	f.StringVar(&a.g.key, "key", "", "client private key (PEM) for mutual TLS")
	f.BoolVar(&a.g.insecure, "insecure", false, "connect to a TCP address WITHOUT TLS (plaintext; tokens are refused)")
	f.StringVar(&a.g.token, "token", "", "bearer token (env REPLCTL_TOKEN; prefer the env var, flags show in ps)")
	f.StringVarP(&a.g.output, "output", "o", "table", "output format: table, json or yaml")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))

	root.AddCommand(
		newCopyCommand(a),
		newWatchCommand(a),
		newJobsCommand(a),
		newGetCommand(a),
		newCancelCommand(a),
		newRetryCommand(a),
		newPoliciesCommand(a),
		newPlanCommand(a),
		newReloadCommand(a),
		newReconcileCommand(a),
		newCompletionCommand(a),
		newVersionCommand(a),
		newStatusCommand(a),
	)
	return root
}

// applyEnv fills flags left unset from the environment and checks the
// global flags before any command runs.
func (a *app) applyEnv(cmd *cobra.Command) error {
	fromEnv := func(name, key string, dst *string) {
		if fl := cmd.Flags().Lookup(name); fl != nil && fl.Changed {
			return
		}
		if v := a.getenv(key); v != "" {
			*dst = v
		}
	}
	fromEnv("address", "REPLCTL_ADDRESS", &a.g.address)
	if a.g.address == "" {
		if fl := cmd.Flags().Lookup("address"); fl == nil || !fl.Changed {
			a.g.address = defaultAddress(os.Stat)
		}
	}
	fromEnv("token", "REPLCTL_TOKEN", &a.g.token)
	// A token read with $(cat file) or from a secret mount may end in a newline.
	a.g.token = strings.TrimSpace(a.g.token)
	if a.g.timeout < 0 {
		return usagef("bad --timeout %s: want a duration of 0 (none) or more", a.g.timeout)
	}
	switch a.g.output {
	case "table", "json", "yaml":
	default:
		return usagef("bad -o %s: want table, json or yaml", input.Quote(a.g.output))
	}
	if _, err := parseAddress(a.g.address); err != nil {
		return &usageError{err}
	}
	return nil
}

// runE wraps a command body so its errors are told apart from command-line
// parsing errors (see exitCode).
func runE(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := f(cmd, args); err != nil {
			return &runError{err}
		}
		return nil
	}
}

// argsUsage wraps a cobra.PositionalArgs so its errors are usage errors.
func argsUsage(p cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := p(cmd, args); err != nil {
			return &usageError{err}
		}
		return nil
	}
}

// splitList splits comma-separated and repeated values into one list.
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
