package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

func newVersionCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print replctl's version",
		Example: `  replctl version`,
		Args:    argsUsage(cobra.NoArgs),
		RunE: runE(func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(a.stdout, "replctl %s (%s, %s/%s)\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		}),
	}
}
