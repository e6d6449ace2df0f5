// The Container Apps managed environment the scheduled jobs run in, logging to Log Analytics.

@description('Azure region of the environment.')
param location string

@description('Name of the Container Apps managed environment.')
param name string

@description('Name of the Log Analytics workspace, in this resource group, that receives the logs.')
param logAnalyticsWorkspaceName string

@description('Tags applied to the environment.')
param tags object = {}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsWorkspaceName
}

resource environment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: workspace.properties.customerId
        sharedKey: workspace.listKeys().primarySharedKey
      }
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
    ]
  }
}

@description('Resource id of the environment, for the jobs.')
output id string = environment.id

@description('Name of the environment.')
output name string = environment.name
