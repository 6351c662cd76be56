# Shortcuts for the two README commands (bash scripts/demo.sh, bash scripts/test.sh).
.PHONY: demo test clean
demo:
	bash scripts/demo.sh
test:
	bash scripts/test.sh
clean:
	rm -rf .venv outputs
