package main

import (
	"github.com/spf13/cobra"
)

func newCompletionCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Example: `  # bash, for this shell
  source <(replctl completion bash)

  # zsh, installed
  replctl completion zsh > "${fpath[1]}/_replctl"

  # fish
  replctl completion fish > ~/.config/fish/completions/replctl.fish`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      argsUsage(cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs)),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(a.stdout, true)
			case "zsh":
				return root.GenZshCompletion(a.stdout)
			default:
				return root.GenFishCompletion(a.stdout, true)
			}
		}),
	}
}
