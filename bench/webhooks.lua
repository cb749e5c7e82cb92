-- wrk script for `hookyard bench`: every request is a unique generic webhook delivery (the
-- naive baseline and the ingest diagnosis; the realistic provider mix is replay.lua's).
--
--   wrk -c32 -d10s --latency -s bench/webhooks.lua http://127.0.0.1:PORT/webhooks/in/bench \
--       -- TOKEN RUN_ID BODY_BYTES
--
-- Each request carries the shared token in X-Webhook-Token, a unique delivery id in
-- X-Delivery-Id (RUN_ID-thread-counter), and a JSON body of about BODY_BYTES bytes.
-- The same requests go to the naive app and to `hookyard serve --no-worker` (ingest).

local threads = {}
local next_id = 0

function setup(thread)
   next_id = next_id + 1
   thread:set("thread_id", next_id)
   table.insert(threads, thread)
end

local token, run_id, path, pad
local counter = 0
local headers = {}

function init(args)
   token = args[1] or "bench-token"
   run_id = args[2] or tostring(os.time())
   local size = tonumber(args[3] or "1024")
   path = wrk.path
   -- Size of the body without the padding, for a typical id.
   local sample = '{"type":"invoice.paid","id":"' .. run_id .. '-00-0000000",'
      .. '"data":{"seq":0000000,"note":""}}'
   pad = string.rep("x", math.max(0, size - #sample))
   headers["Content-Type"] = "application/json"
   headers["X-Webhook-Token"] = token
end

function request()
   counter = counter + 1
   local id = run_id .. "-" .. thread_id .. "-" .. counter
   headers["X-Delivery-Id"] = id
   local body = '{"type":"invoice.paid","id":"' .. id .. '","data":{"seq":' .. counter
      .. ',"note":"' .. pad .. '"}}'
   return wrk.format("POST", path, headers, body)
end

-- One machine-readable line for `hookyard bench` (times in microseconds).
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'HOOKYARD_BENCH {"requests":%d,"duration_us":%d,"bytes":%d,'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9)))
end
