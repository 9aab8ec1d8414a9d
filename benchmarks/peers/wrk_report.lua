-- wrk script of benchmarks/peer_bench.py: POSTs one JSON body (a file named after `--`) and, when the run
-- ends, prints one line `PEER_BENCH_JSON {...}`: counts, errors, latency percentiles (microseconds), every
-- HTTP status seen, and the first body answered with each non-2xx status (so an overload answer shows its
-- message).
--   wrk -t1 -c64 -d10s --timeout 30s -s wrk_report.lua http://127.0.0.1:8501/v1/models/m:predict -- body.json

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local f = assert(io.open(args[1], "rb"))
   wrk.method = "POST"
   wrk.body = f:read("*a")
   f:close()
   wrk.headers["Content-Type"] = "application/json"
   statuses = {}
   samples = {}
end

function response(status, headers, body)
   local key = tostring(status)
   statuses[key] = (statuses[key] or 0) + 1
   if (status < 200 or status > 299) and samples[key] == nil then
      samples[key] = string.sub(body or "", 1, 300)
   end
end

local function quote(s)
   s = string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end)
   return '"' .. s .. '"'
end

local function object(t)
   local parts = {}
   for k, v in pairs(t) do
      table.insert(parts, quote(k) .. ":" .. (type(v) == "number" and string.format("%d", v) or quote(v)))
   end
   return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
   local counts, bodies = {}, {}
   for _, thread in ipairs(threads) do
      for k, v in pairs(thread:get("statuses") or {}) do counts[k] = (counts[k] or 0) + v end
      for k, v in pairs(thread:get("samples") or {}) do if bodies[k] == nil then bodies[k] = v end end
   end
   local pct = {}
   for _, p in ipairs({50, 90, 99, 99.9}) do
      table.insert(pct, string.format('"%s":%d', tostring(p), latency:percentile(p)))
   end
   local e = summary.errors
   io.write(string.format(
      'PEER_BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,' ..
      '"write":%d,"status":%d,"timeout":%d},"latency_us":{"min":%d,"mean":%.1f,"max":%d,"percentiles":{%s}},' ..
      '"statuses":%s,"bodies":%s}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.max, table.concat(pct, ","), object(counts), object(bodies)))
end
