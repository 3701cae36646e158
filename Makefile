# batchlane — two commands set everything up on a fresh machine: `make run`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPEC ?= examples/orders/lane.yaml
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

STACK_NAME ?=
PY_SOURCES := batchlane functions stacks tests app.py scripts benchmarks examples
LOCKS := $(wildcard requirements/*.txt)

.PHONY: setup run test bench synth lint image-check smoke clean

setup: $(STAMP)

# Python: requirements.txt (-r requirements/{dev,cdk,bench}.txt: exact pins by role). Node: package-lock.json
# (the CDK CLI and @cloud-copilot/iam-simulate, which the IAM proof in tests/aws uses), installed with npm ci.
$(STAMP): requirements.txt $(LOCKS) pyproject.toml package.json package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

## run: the shipped example lane on the local embedded store (.lane/ or $LANE_HOME)
run: $(STAMP)
	$(BIN)/lane run $(SPEC)

## test: lint (ruff, mypy on batchlane/), then the whole suite (unit, local end-to-end, moto/ASL, CDK, IAM proof)
test: $(STAMP)
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist loadgroup

## bench: certification and rerun benchmarks (not part of test)
bench: $(STAMP)
	$(BIN)/python -m benchmarks

## synth: CDK app to cdk.out/ offline (no credentials, no Docker); SPEC picks the lane, STACK_NAME a second copy
synth: $(STAMP)
	$(BIN)/python app.py -c spec=$(SPEC) $(if $(STACK_NAME),-c stack_name=$(STACK_NAME))

## image-check: the runtime image's lock (requirements/image.txt) resolves as linux cp313 x86_64 wheels; prints sizes (needs PyPI, not Docker)
image-check: $(STAMP)
	$(BIN)/python scripts/image_check.py --lock requirements/image.txt --arch x86_64

## smoke: scripts/smoke.sh against a local moto server (after `cdk deploy`, run scripts/smoke.sh with the stack's outputs instead)
smoke: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH scripts/smoke.sh --moto

## lint: cfn-lint on the synthesized templates. Ignored: W3005 (CDK emits a DependsOn on a role next to a GetAtt of the same role; redundant, harmless)
lint: synth
	$(BIN)/cfn-lint cdk.out/*.template.json -i W3005

clean:
	rm -rf .lane cdk.out .pytest_cache
