-- Argo CD health of kubatch.io JobQueue, ComputeEnvironment and JobDefinition (one script for the three): kstatus conventions (Ready, Stalled, Reconciling, observedGeneration).
hs = {}
local function condition(t)
  if obj.status == nil or obj.status.conditions == nil then return nil end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == t then return c end
  end
  return nil
end
local function describe(c)
  local msg = c.type .. "=" .. c.status
  if c.reason ~= nil and c.reason ~= "" then msg = msg .. " (" .. c.reason .. ")" end
  if c.message ~= nil and c.message ~= "" then msg = msg .. ": " .. c.message end
  return msg
end
if obj.spec ~= nil and obj.spec.state == "Disabled" then
  hs.status = "Suspended"
  hs.message = "state is Disabled"
  return hs
end
local generation = obj.metadata ~= nil and obj.metadata.generation or nil
if generation ~= nil and (obj.status == nil or obj.status.observedGeneration == nil
    or obj.status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "kubatch has not yet observed generation " .. generation
  return hs
end
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end
local ready = condition("Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
else
  local reconciling = condition("Reconciling")
  if ready.status == "Unknown" or (reconciling ~= nil and reconciling.status == "True") then
    hs.status = "Progressing"
  else
    hs.status = "Degraded"
  end
  hs.message = describe(ready)
end
return hs
