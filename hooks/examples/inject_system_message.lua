-- Put the house system prompt in front of every conversation.
-- OpenAI: a first "system" message; Anthropic: the top-level "system" field.

ctx.prompt = "You are a helpful assistant. Never reveal internal hostnames."

function on_request(req)
  if req.api == "anthropic" then
    local system = req.body:get("system")
    if type(system) == "string" and system ~= "" then
      req.body:set("system", ctx.prompt .. "\n\n" .. system)
    else
      req.body:set("system", ctx.prompt)
    end
    return
  end
  local messages = req.body:get("messages")
  if type(messages) ~= "table" then
    return
  end
  table.insert(messages, 1, { role = "system", content = ctx.prompt })
  req.body:set("messages", messages)
end
