-- wrk script of bench/run.sh: GET /v1/resource with API key / token pairs
-- read from the file named by $PAIRS ("KEY TOKEN" per line), taken in turn,
-- so that the load is spread over many distinct keys and tokens.
-- done() prints one machine-readable RESULT line (latencies in microseconds).

local pairs_file = os.getenv("PAIRS") or "pairs.txt"
local prepared = {}
local position = 0

function init(args)
  for line in io.lines(pairs_file) do
    local key, token = line:match("^(%S+) (%S+)$")
    if key then
      prepared[#prepared + 1] = wrk.format("GET", "/v1/resource",
        { ["x-api-key"] = key, ["x-api-token"] = token })
    end
  end
  if #prepared == 0 then
    error("no KEY TOKEN pairs in " .. pairs_file)
  end
  -- Threads start at different places of the list.
  position = math.random(#prepared) - 1
end

function request()
  position = position % #prepared + 1
  return prepared[position]
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.2f rps=%.0f p50_us=%d p99_us=%d p999_us=%d max_us=%d " ..
    "non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    errors.status, errors.connect, errors.read, errors.write, errors.timeout))
end
