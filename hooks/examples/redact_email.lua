-- Replace email addresses in the last message before it leaves the gateway.
-- Only reads and rewrites that one field; the rest of the body is untouched.

ctx.email = "[%w%.%%%+%-_]+@[%w%.%-]+%.%a%a+"

function on_request(req)
  local n = req.body:get("messages.#")
  if not n or n == 0 then
    return
  end
  local path = "messages." .. (n - 1) .. ".content"
  local content = req.body:get(path)
  if type(content) ~= "string" then
    return
  end
  local redacted, count = content:gsub(ctx.email, "[redacted email]")
  if count > 0 then
    req.body:set(path, redacted)
    req:tag("redacted", tostring(count))
  end
end
