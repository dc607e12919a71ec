# contract.mk - the API contract checked by node: api/openapi.json against an OpenAPI 3
# validator, and every JSON answer the end-to-end tests received against its route's
# schema in that file (tests/contract/check.mjs, packages pinned in tests/contract/).
#
#   make contract-check   check $(CONTRACT)/responses.jsonl, which `make test` writes
#                         (FV_CONTRACT_LOG) and then checks with this target
#
# The packages are installed once per lockfile into $(CONTRACT)/node_modules by
# scripts/npm-pinned.sh; without node the checks are skipped with a notice.

CONTRACT     := $(BUILD)/contract
CONTRACT_LOG := $(CONTRACT)/responses.jsonl

$(CONTRACT)/.stamp: tests/contract/package.json tests/contract/package-lock.json scripts/npm-pinned.sh
	@sh scripts/npm-pinned.sh tests/contract $(CONTRACT) contract-node

.PHONY: contract-check
contract-check: $(CONTRACT)/.stamp
	@if ! command -v node >/dev/null 2>&1 || [ ! -f $(CONTRACT)/.stamp ]; then \
	    echo "contract: node or its packages are missing: answers NOT checked against api/openapi.json"; \
	elif [ ! -s $(CONTRACT_LOG) ]; then \
	    echo "contract: $(CONTRACT_LOG) is empty: run make test" >&2; exit 1; \
	else \
	    FV_CONTRACT_NODE=$(CONTRACT) node tests/contract/check.mjs responses api/openapi.json $(CONTRACT_LOG); \
	fi
