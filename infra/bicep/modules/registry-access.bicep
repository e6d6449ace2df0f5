// Grants the jobs' identity AcrPull on an existing Azure Container Registry that holds the spindex image.

@description('Name of the existing container registry, in the resource group this module is deployed to.')
param registryName string

@description('Object id of the identity the jobs run as.')
param principalId string

// Built-in role definition (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var acrPull = '7f951dda-4ed3-4680-a7ca-43fe172d538d'

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource pull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, principalId, acrPull)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPull)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

@description('Login server of the registry, for the jobs\' registry configuration.')
output loginServer string = registry.properties.loginServer
