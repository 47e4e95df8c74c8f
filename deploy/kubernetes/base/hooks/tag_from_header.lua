-- Tag requests with the calling application, from the x-client-app header,
-- so logs and metrics can be broken down by it. Tag values are bounded: keep
-- only safe characters and at most 64 bytes.

function on_request(req)
  local app = req:header("x-client-app")
  if not app or app == "" then
    app = "unknown"
  end
  app = app:lower():gsub("[^%w%.%-_]", "_"):sub(1, 64)
  req:tag("app", app)
end
