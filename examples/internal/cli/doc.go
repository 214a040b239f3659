// Package cli holds the boilerplate that every program in examples/ shares:
// the main function with its signal handling and exit codes, flag parsing
// and usage errors. It is internal to examples/, so users of opskit never
// depend on it; a program copied out of examples/ replaces it with the few
// lines it stands for.
//
// A program puts its work in a run function that returns an error and lets
// Main turn that error into an exit code:
//
//	func main() {
//		cli.Main("tour", func(ctx context.Context) error {
//			return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
//		})
//	}
//
//	func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
//		fs := cli.NewFlagSet("tour", stderr, "Usage: tour [flags]\n\nFlags:\n")
//		if err := cli.Parse(fs, args); err != nil {
//			return err
//		}
//		if fs.NArg() > 0 {
//			return cli.Usagef(fs, "unexpected arguments %q", fs.Args())
//		}
//		fmt.Fprintln(stdout, "the program's work, bounded by ctx")
//		return ctx.Err()
//	}
//
// # Testing
//
// Tests call run, not main, and compare its error with [ErrUsage] and
// [flag.ErrHelp]; the package's own tests are in package cli.
package cli
