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
	fmt.Fprintln(out, "kitenats is a message broker with KiteQ's semantics and a NATS face.")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "usage: kitenats [COMMAND] [flags] [arguments]")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "commands:")
	tw := newTable(out)
	for _, c := range cmds {
		fmt.Fprintf(tw, "  %s\t%s\n", c.Name, c.Summary)
	}
	fmt.Fprintf(tw, "  %s\t%s\n", "help", "list the commands, or show one's help: kitenats help CMD")
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "With no command, or flags first, kitenats serves: `kitenats -db memory://` is `kitenats serve -db memory://`.")
	_, err := fmt.Fprintln(out, "Run `kitenats CMD -h` for a command's arguments, flags and examples.")
	return err
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
func (h help) write(w io.Writer, name string, printFlags func(io.Writer)) {
	fmt.Fprintf(w, "usage: kitenats %s %s\n\n", name, h.usage)
	fmt.Fprintln(w, h.about)
	fmt.Fprintln(w, "\nflags:")
	printFlags(w)
	fmt.Fprintln(w, "\nexamples:")
	for _, e := range h.examples {
		fmt.Fprintf(w, "  %s\n", e)
	}
}

// newFlagSet returns the flag set of `kitenats name`, whose -h prints h.
func newFlagSet(name string, h help) *flag.FlagSet {
	fs := flag.NewFlagSet("kitenats "+name, flag.ContinueOnError)
	fs.Usage = func() {
		h.write(fs.Output(), name, func(w io.Writer) {
			out := fs.Output()
			fs.SetOutput(w)
			fs.PrintDefaults()
			fs.SetOutput(out)
		})
	}
	return fs
}

// parseFlags parses args into fs. On -h it prints the command's help on
// out and returns flag.ErrHelp; a bad flag is an error that points at -h,
// without the whole help text.
func parseFlags(fs *flag.FlagSet, args []string, out io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	case err != nil:
		return fmt.Errorf("%w (%s -h for help)", err, fs.Name())
	}
	return nil
}
