// An Azure OpenAI account with the embedding deployment spindex calls, Entra ID only.

@description('Azure region of the account (embedding models are not offered in every region).')
param location string

@description('Name of the account, also its custom subdomain (https://<name>.openai.azure.com).')
param name string

@description('Name of the embedding deployment (SPINDEX_EMBEDDING__DEPLOYMENT).')
param deploymentName string

@description('Embedding model to deploy (SPINDEX_EMBEDDING__MODEL).')
param model string = 'text-embedding-3-small'

@description('Version of the embedding model.')
param modelVersion string = '1'

@description('Deployment type: `Standard` (regional) or `GlobalStandard`.')
@allowed([
  'Standard'
  'GlobalStandard'
])
param deploymentSku string = 'Standard'

@description('Deployment capacity, in thousands of tokens per minute.')
@minValue(1)
param capacity int = 120

@description('Object id of the identity the jobs run as, granted Cognitive Services OpenAI User.')
param principalId string

@description('Tags applied to the account.')
param tags object = {}

// Built-in role definition (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var cognitiveServicesOpenAIUser = '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'

resource account 'Microsoft.CognitiveServices/accounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'OpenAI'
  sku: {
    name: 'S0'
  }
  properties: {
    // A custom subdomain is required for Entra ID tokens.
    customSubDomainName: name
    publicNetworkAccess: 'Enabled'
    disableLocalAuth: true
  }
}

resource embedding 'Microsoft.CognitiveServices/accounts/deployments@2023-05-01' = {
  parent: account
  name: deploymentName
  sku: {
    name: deploymentSku
    capacity: capacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: model
      version: modelVersion
    }
  }
}

resource openAIUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, cognitiveServicesOpenAIUser)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cognitiveServicesOpenAIUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

@description('Endpoint of the account, for SPINDEX_EMBEDDING__ENDPOINT.')
output endpoint string = account.properties.endpoint

@description('Name of the embedding deployment.')
output deploymentName string = embedding.name
