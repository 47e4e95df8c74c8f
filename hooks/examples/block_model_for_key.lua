-- Refuse expensive models for some client keys.

ctx.blocked = {
  ["ci-key"] = { ["gpt-4o"] = true, ["claude-opus-4"] = true },
}

function on_request(req)
  local models = ctx.blocked[req.key_name]
  if models and models[req.model] then
    return req:reject(403, "model " .. req.model .. " is not allowed for key " .. req.key_name)
  end
end
