-- Argo CD health of a kubatch.io BatchJob: from status.phase (and kstatus conventions).
hs = {}
local function text(s)
  local msg = s.phase or ""
  if s.reason ~= nil and s.reason ~= "" then msg = msg .. " (" .. s.reason .. ")" end
  if s.message ~= nil and s.message ~= "" then msg = msg .. ": " .. s.message end
  return msg
end
if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for kubatch to accept the job"
  return hs
end
local s = obj.status
if s.observedGeneration ~= nil and obj.metadata ~= nil and obj.metadata.generation ~= nil
    and s.observedGeneration < obj.metadata.generation
    and s.phase ~= "Succeeded" and s.phase ~= "Failed" then
  hs.status = "Progressing"
  hs.message = "kubatch has not yet observed generation " .. obj.metadata.generation
  return hs
end
if s.phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = text(s)
elseif s.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = text(s)
elseif s.phase == "Runnable" and s.reason == "QueueDisabled" then
  hs.status = "Suspended"
  hs.message = text(s)
else
  -- Submitted, Pending, Runnable, Starting, Running
  hs.status = "Progressing"
  hs.message = text(s)
  if s.queuePosition ~= nil and (s.phase == "Runnable" or s.phase == "Pending") then
    hs.message = hs.message .. " [queue position " .. s.queuePosition .. "]"
  end
end
return hs
