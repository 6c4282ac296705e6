// Command lambdalake is the one binary of DESIGN §5: every role (speed,
// compact, jobs, serve, all), the embedded `dev` mode, the generator and the
// operator tools, each a subcommand over one config file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/lambdalake/lambdalake/internal/config"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

// commands is filled by each command's file in an init func, so a new role
// is one new file.
var commands = map[string]command{}

// errUsage marks a command-line mistake: exit 2, no stack of wrapping.
var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: lambdalake COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-13s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun `lambdalake COMMAND -h` for a command's flags.")
}

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()})))
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage(os.Stdout)
		return
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "lambdalake: unknown command %q\n\n", os.Args[1])
		usage(os.Stderr)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "lambdalake %s: %v\n", os.Args[1], err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("LAMBDALAKE_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// flagSet returns a flag set with the --config flag every command shares.
func flagSet(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("lambdalake "+name, flag.ContinueOnError)
	def := os.Getenv("LAMBDALAKE_CONFIG")
	if def == "" {
		def = "lambdalake.yaml"
	}
	path := fs.String("config", def, "config file (env LAMBDALAKE_CONFIG)")
	return fs, path
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			return nil, fmt.Errorf("config %s is invalid:\n%w", path, err)
		}
		return nil, err
	}
	return cfg, nil
}
