# browser.mk - the page (GET /) in a real browser: tests/browser/page.mjs starts
# `facever serve --port 0`, drives Debian's chromium headless with puppeteer-core
# (pinned in tests/browser/, installed into $(BROWSER_DIR) by scripts/npm-pinned.sh)
# and saves screenshots in $(BROWSER_DIR).
#
#   make browser-test                     SKIP (exit 0) without chromium or node
#   make browser-test BROWSER_REQUIRED=1  fail instead of skipping
#
# CHROMIUM names the browser (default /usr/bin/chromium); BROWSER_TIMEOUT bounds the run.

BROWSER_DIR      := $(BUILD)/browser
CHROMIUM         ?= /usr/bin/chromium
BROWSER_TIMEOUT  ?= 180
BROWSER_REQUIRED ?= 0

$(BROWSER_DIR)/.stamp: tests/browser/package.json tests/browser/package-lock.json scripts/npm-pinned.sh
	@sh scripts/npm-pinned.sh tests/browser $(BROWSER_DIR) browser-node

.PHONY: browser-test
browser-test: $(FACEVER) models/.stamp tests/data/.stamp tests/data/phone/.stamp $(BROWSER_DIR)/.stamp
	@if [ ! -x "$(CHROMIUM)" ] || ! command -v node >/dev/null 2>&1 || [ ! -f $(BROWSER_DIR)/.stamp ]; then \
	    why="$(CHROMIUM) is not installed (make deps installs chromium)"; \
	    [ -x "$(CHROMIUM)" ] && why="node or puppeteer-core is missing (make deps)"; \
	    if [ "$(BROWSER_REQUIRED)" = 1 ]; then echo "browser-test: FAIL: $$why" >&2; exit 1; fi; \
	    echo "browser-test: SKIP: $$why; the page was NOT tested in a browser"; exit 0; \
	fi; \
	echo "browser-test: chromium $(CHROMIUM), facever ./$(FACEVER), screenshots in $(BROWSER_DIR)/"; \
	FV_BROWSER_NODE=$(BROWSER_DIR) timeout -k 10 $(BROWSER_TIMEOUT) \
	    node tests/browser/page.mjs ./$(FACEVER) $(CHROMIUM) $(BROWSER_DIR)
