-- wrk script for `hookyard bench`: sends requests made beforehand in Python (signed provider
-- deliveries; wrk's Lua cannot compute an HMAC), each one once.
--
--   wrk -t1 -c32 -d10s --latency -s bench/replay.lua http://127.0.0.1:PORT/ \
--       -- REQUESTS_FILE THREADS [once|cycle]
--
-- The file (hookyard/bench/replay.py writes it): a line "HOOKYARD-REQUESTS 1 <count>", then
-- for each request its length in bytes on a line, followed by the raw HTTP/1.1 request.
-- Thread k of n keeps requests k, k+n, k+2n, ... so every thread goes through the stream in
-- order. Mode "once" (the default): a thread that has sent all of its requests stops and the
-- summary says so (the run ended early: its figures are not valid); it never sends a request
-- twice. Mode "cycle" starts the slice again and counts the wraps (for the bare endpoint,
-- which stores nothing).

local threads = {}
local next_index = 0

function setup(thread)
   thread:set("thread_index", next_index)
   next_index = next_index + 1
   table.insert(threads, thread)
end

local requests = {}
local position = 1
local verified = false
local mode = "once"
taken = 0
available = 0
exhausted = 0
wraps = 0

function init(args)
   local path = args[1] or error("replay.lua: give the requests file after --")
   local count_threads = tonumber(args[2] or "1")
   mode = args[3] or "once"
   local file = assert(io.open(path, "rb"))
   local header = file:read("*l") or ""
   local magic, total = header:match("^(HOOKYARD%-REQUESTS 1) (%d+)$")
   if not magic then
      error("replay.lua: " .. path .. " is not a requests file")
   end
   for index = 0, tonumber(total) - 1 do
      local size = tonumber(file:read("*l"))
      if index % count_threads == thread_index then
         requests[#requests + 1] = file:read(size)
      else
         file:seek("cur", size)
      end
   end
   file:close()
   available = #requests
   -- wrk calls the first thread's request() once before the run to check what it returns,
   -- and sends nothing of it: that first call must not use a request up.
   verified = thread_index ~= 0
end

function request()
   if not verified then
      verified = true
      return requests[1] or ""
   end
   if position > #requests then
      if mode == "cycle" and #requests > 0 then
         position = 1
         wraps = wraps + 1
      else
         exhausted = 1
         wrk.thread:stop()
         return ""
      end
   end
   local r = requests[position]
   position = position + 1
   taken = taken + 1
   return r
end

-- One machine-readable line for `hookyard bench` (times in microseconds).
function done(summary, latency, requests)
   local e = summary.errors
   local sum_taken, sum_available, sum_exhausted, sum_wraps = 0, 0, 0, 0
   for _, thread in ipairs(threads) do
      sum_taken = sum_taken + thread:get("taken")
      sum_available = sum_available + thread:get("available")
      sum_exhausted = sum_exhausted + thread:get("exhausted")
      sum_wraps = sum_wraps + thread:get("wraps")
   end
   io.write(string.format(
      'HOOKYARD_BENCH {"requests":%d,"duration_us":%d,"bytes":%d,'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d},'
         .. '"replay":{"taken":%d,"available":%d,"exhausted_threads":%d,"wraps":%d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9),
      sum_taken, sum_available, sum_exhausted, sum_wraps))
end
