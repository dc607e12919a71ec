-- post_count.lua - wrk script: POST the file named by the first script argument as JSON
-- and count the answers that are not 2xx. done() prints one line,
--   RESULT requests_per_s=.. p50_ms=.. p99_ms=.. requests=.. non2xx=.. socket_errors=.. ...
-- then last_failure=<unix seconds of the last non-2xx answer, 0 if none>.
-- Used by scripts/loadtest.sh and scripts/cluster-test.sh.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    local f = assert(io.open(args[1], "rb"))
    wrk.body = f:read("*a")
    f:close()
    non2xx = 0
    answers = 0
    last_failure = 0
end

function response(status, headers, body)
    answers = answers + 1
    if status < 200 or status > 299 then
        non2xx = non2xx + 1
        last_failure = os.time()
    end
end

function done(summary, latency, requests)
    local bad, total, last = 0, 0, 0
    for _, t in ipairs(threads) do
        bad = bad + t:get("non2xx")
        total = total + t:get("answers")
        last = math.max(last, t:get("last_failure"))
    end
    local e = summary.errors
    local socket = e.connect + e.read + e.write + e.timeout
    io.write(string.format("RESULT requests_per_s=%.1f p50_ms=%.1f p99_ms=%.1f "
        .. "requests=%d non2xx=%d socket_errors=%d (connect %d, read %d, write %d, timeout %d) "
        .. "last_failure=%d\n",
        summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1e3,
        latency:percentile(99) / 1e3, summary.requests, bad, socket,
        e.connect, e.read, e.write, e.timeout, last))
end
