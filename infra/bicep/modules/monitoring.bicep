// The Log Analytics workspace that receives the container jobs' console and system logs.

@description('Azure region of the workspace.')
param location string

@description('Name of the Log Analytics workspace.')
param name string

@description('Days of log retention.')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

@description('Tags applied to the workspace.')
param tags object = {}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
  }
}

@description('Resource id of the workspace.')
output id string = workspace.id

@description('Name of the workspace (the environment module reads its shared key by name).')
output name string = workspace.name
