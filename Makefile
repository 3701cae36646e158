# batchlane — two commands set everything up on a fresh machine: `make run`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPEC ?= examples/orders/lane.yaml
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: setup run test bench synth lint layer clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

## run: the shipped example lane on the local embedded store (.lane/ or $LANE_HOME)
run: $(STAMP)
	$(BIN)/lane run $(SPEC)

## test: the whole suite (unit, local end-to-end, moto/ASL, CDK)
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

## bench: certification and rerun benchmarks (not part of test)
bench: $(STAMP)
	$(BIN)/python -m benchmarks

## synth: CDK app to cdk.out/ offline (no credentials, no Docker); SPEC picks the lane
synth: $(STAMP)
	$(BIN)/python app.py -c spec=$(SPEC)

## layer: Lambda dependency layer in build/layer (pip --platform manylinux2014_x86_64 --only-binary=:all:, Python 3.13; needs PyPI, not Docker)
layer: $(STAMP)
	$(BIN)/python -m stacks.build_layer --target build/layer

## lint: cfn-lint on the synthesized templates. Ignored: W3005 (CDK emits a DependsOn on a role next to a GetAtt of the same role; redundant, harmless)
lint: synth
	$(BIN)/cfn-lint cdk.out/*.template.json -i W3005

clean:
	rm -rf .lane cdk.out .pytest_cache build/layer
