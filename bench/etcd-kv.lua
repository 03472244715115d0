-- bench/etcd-kv.lua - wrk script: etcd v3 KV through its HTTP/JSON gateway, the same keys
-- and values as redis-benchmark -r 100000 -d 64 (key:<12 digits>, 64-byte value).
--
--   wrk -t2 -c50 -d10s -s bench/etcd-kv.lua http://127.0.0.1:PORT -- put|range|mix [keyspace]
--
-- put:   POST /v3/kv/put   {"key": b64, "value": b64}   (a quorum-committed, fsync'd write)
-- range: POST /v3/kv/range {"key": b64}                 (linearizable read: etcd's default)
-- mix:   90% range, 10% put
-- Each request picks a random key in [0, keyspace). done() prints one machine-readable line:
--   wrk_result requests=N secs=S rps=R p50_ms=A p99_ms=B errors=E
-- where errors counts socket errors, timeouts and non-2xx answers.

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1) ..
      (b and b64chars:sub(c3 + 1, c3 + 1) or "=") .. (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

local op = "put"
local keyspace = 100000
local value64 = b64(string.rep("x", 64))
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  op = args[1] or "put"
  keyspace = tonumber(args[2] or "100000")
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  local key = b64(string.format("key:%012d", math.random(0, keyspace - 1)))
  if op == "range" or (op == "mix" and math.random(1, 10) > 1) then
    return wrk.format("POST", "/v3/kv/range", headers, '{"key":"' .. key .. '"}')
  end
  return wrk.format("POST", "/v3/kv/put", headers,
    '{"key":"' .. key .. '","value":"' .. value64 .. '"}')
end

function done(summary, latency, requests)
  local e = summary.errors
  local errs = e.connect + e.read + e.write + e.timeout + e.status
  local secs = summary.duration / 1e6
  io.write(string.format("wrk_result requests=%d secs=%.3f rps=%.0f p50_ms=%.3f " ..
    "p99_ms=%.3f errors=%d\n", summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errs))
end
