-- Send each team's traffic to its own provider, chosen by the x-team header.
-- Teams not listed keep the normal model-based routing.

ctx.providers = {
  search = "anthropic",
  ads    = "openai",
}

function on_request(req)
  local team = req:header("x-team")
  if not team then
    return
  end
  team = team:lower()
  local provider = ctx.providers[team]
  if provider then
    req:provider(provider)
  end
end
