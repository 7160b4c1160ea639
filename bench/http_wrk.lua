-- bench/http_wrk.lua — the HTTP side of bench/http.sh, a script for wrk
-- (Debian's wrk: C, one event loop per thread, HTTP/1.1 keep-alive): each
-- of wrk's connections sends one-record SOAP Ingest calls, one at a time (a
-- request is sent when the previous answer arrived), as pgbench's clients
-- do; every record has a random id and score, as bench/http.sh's pgbench
-- script.
--
--   wrk -t N -c N -d SECONDS --latency -s http_wrk.lua URL -- SESSION_TOKEN
--
-- Prints "requests N failed N seconds S tps T".  An answer that is not 200
-- with a UUID in pstrSUuids counts as failed (the first is shown), and so
-- does every socket error or timeout wrk counts.

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
  table.insert(threads, thread)
end

function init(args)
  token = args[1]
  failed = 0
  first_failure = nil
  math.randomseed(os.time() * 1000 + thread_id)
end

function request()
  local id = math.random(1, 2000000000)
  local score = math.random(0, 1000000)
  local body = '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:xtk:session">'
    .. '<soapenv:Body><urn:Ingest><urn:sessiontoken>' .. token .. '</urn:sessiontoken><urn:domDoc>'
    .. '<sampleTableStg id="' .. id .. '" testcol1="value-' .. id .. ' lorem ipsum" testcol2="second column ' .. score .. ' with some text"'
    .. ' score="' .. score .. '" xtkschema="dem:sampleTableStg"/></urn:domDoc></urn:Ingest></soapenv:Body></soapenv:Envelope>'
  return wrk.format("POST", nil, { ["Content-Type"] = "text/xml; charset=utf-8" }, body)
end

function response(status, headers, body)
  if status ~= 200 or not body:find('<pstrSUuids[^>]*>%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x<') then
    failed = failed + 1
    if first_failure == nil then first_failure = status .. ' ' .. body end
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  local failures = errors.connect + errors.read + errors.write + errors.timeout
  local first = nil
  for _, thread in ipairs(threads) do
    failures = failures + thread:get("failed")
    first = first or thread:get("first_failure")
  end
  local seconds = summary.duration / 1e6
  if first then io.stderr:write("first failure: " .. first .. "\n") end
  io.write(string.format("requests %d failed %d seconds %.2f tps %.1f\n",
    summary.requests, failures, seconds, (summary.requests - failures) / seconds))
end
