-- Forward auth for HAProxy, written for this project (issue 24): asks the identity provider
-- whether a request may pass, with HAProxy's own HTTP client (core.httpclient, HAProxy 2.6+:
-- doc/lua-api/index.rst), and leaves the answer in transaction variables that haproxy.cfg acts
-- on: txn.auth_status (the provider's HTTP status; 0 when it did not answer),
-- txn.auth_location (where to sign in), txn.auth_user, _groups, _name, _email.
--
-- The request it sends is Authelia's ForwardAuth one (docs/content/reference/guides/
-- proxy-authorization.md @ v4.39.20): X-Forwarded-Method, -Proto, -Host, -URI and -For, plus
-- the client's Cookie, Authorization, Accept and X-Requested-With, on which Authelia decides
-- between a redirect to its portal (302/303) and a 401.
--
-- A Lua error leaves txn.auth_status unset; haproxy.cfg denies every request without a 200.

local function first(headers, name)
  local values = headers[name]
  if values == nil then
    return nil
  end
  return values[0] or values[1]
end

core.register_action("forward-auth", { "http-req" }, function(txn, verify_url)
  local query = txn.sf:query()
  local uri = txn.sf:path()
  if query ~= nil and query ~= "" then
    uri = uri .. "?" .. query
  end
  local headers = {
    ["x-forwarded-method"] = { txn.sf:method() },
    ["x-forwarded-proto"] = { "https" },
    ["x-forwarded-host"] = { txn.sf:req_hdr("host") },
    ["x-forwarded-uri"] = { uri },
    ["x-forwarded-for"] = { txn.sf:src() },
  }
  -- req.fhdr: the whole header line (req.hdr would split "text/html,application/xhtml+xml").
  for _, name in ipairs({ "cookie", "authorization", "accept", "x-requested-with" }) do
    local value = txn.sf:req_fhdr(name)
    if value ~= nil and value ~= "" then
      headers[name] = { value }
    end
  end
  -- One client per request (reusing one is for HAProxy 3.5 on), with a timeout: without one
  -- it would wait forever.
  local response = core.httpclient():get({ url = verify_url, headers = headers, timeout = 5000 })
  txn:set_var("txn.auth_status", response.status or 0)
  local received = response.headers or {}
  local location = first(received, "location")
  if location ~= nil then
    txn:set_var("txn.auth_location", location)
  end
  for _, field in ipairs({ "user", "groups", "name", "email" }) do
    local value = first(received, "remote-" .. field)
    if value ~= nil then
      txn:set_var("txn.auth_" .. field, value)
    end
  end
end, 1)
