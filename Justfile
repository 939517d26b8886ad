# cedana's tasks. `just --list` shows them.

buf := "go run github.com/bufbuild/buf/cmd/buf@v1.75.0"

# Regenerate gen/ from proto/ with pinned tools.
gen:
    {{buf}} lint
    {{buf}} generate
