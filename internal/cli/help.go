package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Command is one kitenats subcommand: main's table of them is what
// Dispatch picks from and what `kitenats help` lists.
type Command struct {
	Name    string
	Summary string // one line, for `kitenats help`
	Run     func(args []string) error
}

// Dispatch runs the subcommand args name with the rest of args; serve is
// the default (no arguments, or flags first). `kitenats -h`, `--help` and
// `help` list cmds on out, `help CMD` shows CMD's help.
func Dispatch(cmds []Command, args []string, out io.Writer) error {
	if len(args) > 0 && isHelpFlag(args[0]) {
		return PrintCommands(out, cmds)
	}
	name := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		if len(args) == 0 {
			return PrintCommands(out, cmds)
		}
		cmd, err := lookup(cmds, args[0])
		if err != nil {
			return err
		}
		if err := cmd.Run([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
			return err
		}
		return nil
	}
	cmd, err := lookup(cmds, name)
	if err != nil {
		return err
	}
	return cmd.Run(args)
}

func lookup(cmds []Command, name string) (Command, error) {
	for _, c := range cmds {
		if c.Name == name {
			return c, nil
		}
	}
	names := make([]string, 0, len(cmds)+1)
	for _, c := range cmds {
		names = append(names, c.Name)
	}
	names = append(names, "help")
	return Command{}, fmt.Errorf("unknown command %q: the commands are %s (kitenats -h says what each does)", name, strings.Join(names, ", "))
}

func isHelpFlag(a string) bool { return a == "-h" || a == "-help" || a == "--help" || a == "--h" }

// PrintCommands writes `kitenats help`: every command with its summary.
func PrintCommands(out io.Writer, cmds []Command) error {
	p := &printer{w: out}
	p.printf("kitenats is a message broker with KiteQ's semantics and a NATS face.\n\n")
	p.printf("usage: kitenats [COMMAND] [flags] [arguments]\n\n")
	p.printf("commands:\n")
	tw := newTable(p)
	t := &printer{w: tw}
	for _, c := range cmds {
		t.printf("  %s\t%s\n", c.Name, c.Summary)
	}
	t.printf("  %s\t%s\n", "help", "list the commands, or show one's help: kitenats help CMD")
	if err := errors.Join(t.err, tw.Flush()); err != nil {
		return err
	}
	p.printf("\nWith no command, or flags first, kitenats serves: `kitenats -db memory://` is `kitenats serve -db memory://`.\n")
	p.printf("Run `kitenats CMD -h` for a command's arguments, flags and examples.\n")
	return p.err
}

// printer writes to w and keeps the first error, so that a sequence of
// writes is checked once, at its end (as bufio.Writer's are).
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) Write(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n, err := p.w.Write(b)
	p.err = err
	return n, err
}

func (p *printer) printf(format string, a ...any) {
	_, _ = fmt.Fprintf(p, format, a...) // kept in p.err
}

// newTable returns a tabwriter for an aligned table on out: columns are
// separated by tabs in what is written, and by two spaces or more in what
// it prints, however long the names; Flush prints it.
func newTable(out io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
}

// help is what `kitenats CMD -h` prints above and below the flags.
type help struct {
	usage    string   // the arguments after "kitenats CMD", e.g. "[flags] TOPIC TYPE BODY"
	about    string   // what the command does, a sentence or a few
	examples []string // command lines, each with an optional "  # comment"
}

// write prints h for command name, with the flags printFlags prints.
func (h help) write(w io.Writer, name string, printFlags func(io.Writer)) error {
	p := &printer{w: w}
	p.printf("usage: kitenats %s %s\n\n%s\n\nflags:\n", name, h.usage, h.about)
	printFlags(p)
	p.printf("\nexamples:\n")
	for _, e := range h.examples {
		p.printf("  %s\n", e)
	}
	return p.err
}

// newFlagSet returns the flag set of `kitenats name`. It prints nothing
// itself: parseFlags prints the help, and main the errors.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("kitenats "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args into fs. On -h it prints h, with fs's flags, on
// out and returns flag.ErrHelp; a bad flag is an error that points at -h,
// without the whole help text.
func parseFlags(fs *flag.FlagSet, h help, args []string, out io.Writer) error {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		if werr := h.write(out, strings.TrimPrefix(fs.Name(), "kitenats "), func(w io.Writer) {
			fs.SetOutput(w)
			fs.PrintDefaults()
			fs.SetOutput(io.Discard)
		}); werr != nil {
			return werr
		}
		return err
	case err != nil:
		return fmt.Errorf("%w (%s -h for help)", err, fs.Name())
	}
	return nil
}
